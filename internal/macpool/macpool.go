// Package macpool signs with HMAC-SHA256 under one secret, from a pool of
// HMAC states: a new state costs several allocations, and the registrar
// signs or checks one for every REGISTER (digest nonces) and every call
// through the proxy (flow tokens).
package macpool

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
)

// Pool hands out HMAC-SHA256 states keyed with one secret.
type Pool struct{ states sync.Pool }

// state is an HMAC with room for its sum, which would otherwise escape
// to the heap through the hash.Hash interface on every call.
type state struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// New returns a Pool keyed with secret.
func New(secret []byte) *Pool {
	p := &Pool{}
	p.states.New = func() any { return &state{h: hmac.New(sha256.New, secret)} }
	return p
}

// Append appends the HMAC of b, truncated to n bytes, to dst.
func (p *Pool) Append(dst, b []byte, n int) []byte {
	s := p.states.Get().(*state)
	defer p.states.Put(s)
	s.h.Reset()
	s.h.Write(b)
	return append(dst, s.h.Sum(s.sum[:0])[:n]...)
}
