package registrar

import "context"

// ExpireNow runs one expiry sweep, for tests.
func (r *Registrar) ExpireNow(ctx context.Context) { r.expire(ctx) }
