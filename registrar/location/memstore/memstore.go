// Package memstore is an in-memory location.Store, for tests and for a
// registrar that needs no persistence.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/sipline/sipline/registrar/location"
)

// Store keeps bindings in a map.
type Store struct {
	mu     sync.RWMutex
	aors   map[string][]location.Binding
	closed bool
}

var _ location.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store { return &Store{aors: map[string][]location.Binding{}} }

// Update implements location.Store.
func (s *Store) Update(ctx context.Context, aor string, fn location.UpdateFunc) ([]location.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: update %s", location.ErrClosed, aor)
	}
	next, err := fn(slices.Clone(s.aors[aor]))
	if err != nil {
		return nil, err
	}
	if len(next) == 0 {
		delete(s.aors, aor)
		return nil, nil
	}
	s.aors[aor] = slices.Clone(next)
	return slices.Clone(next), nil
}

// Lookup implements location.Store.
func (s *Store) Lookup(ctx context.Context, aor string) ([]location.Binding, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("%w: lookup %s", location.ErrClosed, aor)
	}
	bs, ok := s.aors[aor]
	if !ok {
		return nil, fmt.Errorf("%w: %s", location.ErrNotFound, aor)
	}
	return slices.Clone(bs), nil
}

// Range implements location.Store. fn runs without the lock held.
func (s *Store) Range(ctx context.Context, fn func(aor string, bs []location.Binding) bool) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("%w: range", location.ErrClosed)
	}
	snap := make(map[string][]location.Binding, len(s.aors))
	for aor, bs := range s.aors {
		snap[aor] = slices.Clone(bs)
	}
	s.mu.RUnlock()
	for aor, bs := range snap {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !fn(aor, bs) {
			return nil
		}
	}
	return nil
}

// Close implements location.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
