package registrar

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar/digest"
)

// authenticate checks the request's digest credentials: Authorization for
// a registrar (401), Proxy-Authorization for a proxy (407). It returns the
// authenticated user name, or a *StatusError that carries a challenge.
// Unknown users and wrong passwords get the same answer.
//
// claimed is the user the request says it is from: From's for the proxy,
// To's for REGISTER. With auth off, that is who it is.
func (r *Registrar) authenticate(method sip.RequestMethod, fs fields, claimed string, proxy bool) (string, error) {
	if r.authOff {
		return claimed, nil
	}
	hname := "Authorization"
	if proxy {
		hname = "Proxy-Authorization"
	}
	var cred digest.Credentials
	found := false
	for v := range fs.all(hname) {
		c, err := digest.ParseCredentials(v)
		if err != nil {
			r.metrics.authFailures.WithLabelValues("malformed").Inc()
			return "", statusErr(sip.StatusBadRequest, "Malformed "+hname, fmt.Errorf("%s %q: %w", hname, v, err))
		}
		if c.Realm == r.domain {
			cred, found = c, true
			break
		}
	}
	if !found {
		return "", r.challenge(fs, proxy, false, nil)
	}
	if !r.offers(cred.Algorithm) {
		r.metrics.authFailures.WithLabelValues("algorithm").Inc()
		return "", r.challenge(fs, proxy, false, fmt.Errorf("algorithm %s not offered", cred.Algorithm))
	}
	ha1, known := r.users[cred.Username][cred.Algorithm]
	if !known {
		ha1 = r.dummyHA1[cred.Algorithm]
	}
	err := r.auth.Verify(string(method), cred, ha1)
	switch {
	case err == nil && known:
		return cred.Username, nil
	case err == nil:
		// Unreachable unless the random HA1 is guessed.
		err = fmt.Errorf("%w: unknown user", digest.ErrBadResponse)
	case errors.Is(err, digest.ErrStale):
		r.metrics.authFailures.WithLabelValues("stale").Inc()
		return "", r.challenge(fs, proxy, true, err)
	}
	r.metrics.authFailures.WithLabelValues(failureReason(err)).Inc()
	return "", r.challenge(fs, proxy, false, fmt.Errorf("user %q: %w", cred.Username, err))
}

func (r *Registrar) offers(alg digest.Algorithm) bool {
	for _, a := range r.algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// challenge builds the 401 or 407 with one challenge per offered algorithm,
// or only the first for user agents that fail on any algorithm they do
// not know (RFC 8760 §2.4 says to skip those).
func (r *Registrar) challenge(fs fields, proxy, stale bool, cause error) *StatusError {
	code, reason, hname := sip.StatusUnauthorized, "Unauthorized", "WWW-Authenticate"
	if proxy {
		code, reason, hname = sip.StatusProxyAuthRequired, "Proxy Authentication Required", "Proxy-Authenticate"
	}
	e := statusErr(code, reason, cause)
	algs := r.algorithms
	if r.singleChallenge(fs) {
		algs = algs[:1]
	}
	for _, alg := range algs {
		e.Headers = append(e.Headers, [2]string{hname, r.auth.Challenge(alg, stale).String()})
	}
	return e
}

// singleChallenge reports whether the User-Agent in fs is one that gets only
// the first challenge. baresip 1.0 (libre) gives up on the whole response
// when one challenge names an algorithm other than MD5.
func (r *Registrar) singleChallenge(fs fields) bool {
	v, ok := fs.first("User-Agent")
	if !ok || len(r.algorithms) < 2 {
		return false
	}
	ua := strings.ToLower(v)
	for _, a := range r.singleChallengeAgents {
		if strings.Contains(ua, a) {
			return true
		}
	}
	return false
}

func failureReason(err error) string {
	switch {
	case errors.Is(err, digest.ErrReplay):
		return "replay"
	case errors.Is(err, digest.ErrBadNonce):
		return "nonce"
	case errors.Is(err, digest.ErrBadResponse):
		return "credentials"
	default:
		return "other"
	}
}
