package registrar

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ExpireNow runs one expiry sweep, for tests.
func (r *Registrar) ExpireNow(ctx context.Context) { r.expire(ctx) }

// LoopBranch is the Via branch the proxy would give req, for tests.
func LoopBranch(req *sip.Request) string { return branchPrefix + loopHash(req) + ".x" }

// SetTimerT1 sets T1 for the connections made after it, and returns
// what puts it back.
func SetTimerT1(d time.Duration) (restore func()) {
	old := timerT1
	timerT1 = d
	return func() { timerT1 = old }
}
