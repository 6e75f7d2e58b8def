package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/sipline/sipline/registrar/location"
)

// Store keeps bindings in a map. The zero Store is empty and ready to use.
type Store struct {
	mu sync.RWMutex
	// aors holds a slice per AOR that is never modified once stored, so
	// that Range can copy it after the lock is released.
	aors   map[string][]location.Binding
	closed bool
}

var (
	_ location.Store     = (*Store)(nil)
	_ location.Immediate = (*Store)(nil)
)

// New returns an empty Store.
func New() *Store { return &Store{} }

// Immediate implements location.Immediate: Update takes only the lock.
func (s *Store) Immediate() bool { return true }

// Update implements location.Store. fn runs with the Store locked, so it
// must not call the Store.
func (s *Store) Update(ctx context.Context, aor string, fn location.UpdateFunc) ([]location.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: update %s: %w", aor, err)
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
	stored := make([]location.Binding, len(next))
	for i, b := range next {
		b.Expires, b.Updated = b.Expires.Round(0), b.Updated.Round(0)
		stored[i] = b
	}
	if s.aors == nil {
		s.aors = make(map[string][]location.Binding)
	}
	s.aors[aor] = stored
	return slices.Clone(stored), nil
}

// Lookup implements location.Store.
func (s *Store) Lookup(ctx context.Context, aor string) ([]location.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: lookup %s: %w", aor, err)
	}
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

type entry struct {
	aor      string
	bindings []location.Binding
}

// Range implements location.Store. It calls fn on a snapshot taken when
// it starts, with the Store unlocked.
func (s *Store) Range(ctx context.Context, fn func(aor string, bindings []location.Binding) bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: range: %w", err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("%w: range", location.ErrClosed)
	}
	snap := make([]entry, 0, len(s.aors))
	for aor, bs := range s.aors {
		snap = append(snap, entry{aor, bs})
	}
	s.mu.RUnlock()
	for _, e := range snap {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstore: range: %w", err)
		}
		if !fn(e.aor, slices.Clone(e.bindings)) {
			return nil
		}
	}
	return nil
}

// Close implements location.Store. It drops the bindings.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.aors = nil
	return nil
}
