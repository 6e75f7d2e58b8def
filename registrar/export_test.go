package registrar

import (
	"context"

	"github.com/emiago/sipgo/sip"
)

// ExpireNow runs one expiry sweep, for tests.
func (r *Registrar) ExpireNow(ctx context.Context) { r.expire(ctx) }

// LoopBranch is the Via branch the proxy would give req, for tests.
func LoopBranch(req *sip.Request) string { return branchPrefix + loopHash(req) + ".x" }
