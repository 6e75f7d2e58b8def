package digest

import "errors"

var (
	// ErrMalformed reports credentials that cannot be parsed.
	ErrMalformed = errors.New("digest: malformed credentials")
	// ErrAlgorithm reports an algorithm this package does not implement.
	ErrAlgorithm = errors.New("digest: unsupported algorithm")
	// ErrRealm reports credentials for another realm.
	ErrRealm = errors.New("digest: wrong realm")
	// ErrBadNonce reports a nonce this server did not issue.
	ErrBadNonce = errors.New("digest: bad nonce")
	// ErrStale reports a nonce that was issued here but has expired: the
	// client should retry with a fresh one (stale=true).
	ErrStale = errors.New("digest: stale nonce")
	// ErrQOP reports credentials without qop=auth.
	ErrQOP = errors.New("digest: qop must be auth")
	// ErrBadResponse reports a response that does not match: a wrong
	// password or an unknown user.
	ErrBadResponse = errors.New("digest: response mismatch")
	// ErrReplay reports a nonce-count already used with this nonce.
	ErrReplay = errors.New("digest: nonce count replayed")
)
