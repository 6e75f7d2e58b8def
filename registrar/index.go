package registrar

import (
	"context"
	"errors"
	"time"

	"github.com/sipline/sipline/registrar/location"
)

// The index keeps, in memory, what the store would be slow to answer:
// how many bindings each AOR has, when its next one lapses, and which AORs
// are bound through each live stream flow.

func (r *Registrar) loadIndex(ctx context.Context) error {
	now := r.now()
	var err error
	rangeErr := r.store.Range(ctx, func(aor string, bs []location.Binding) bool {
		r.noteBindings(aor, live(bs, now))
		return true
	})
	if rangeErr != nil {
		err = errors.Join(err, rangeErr)
	}
	return err
}

// noteBindings records the current set of aor's bindings.
func (r *Registrar) noteBindings(aor string, bs []location.Binding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total -= r.index[aor].count
	r.total += len(bs)
	for _, fk := range r.index[aor].flows {
		if aors := r.flows[fk]; aors != nil {
			delete(aors, aor)
			if len(aors) == 0 {
				delete(r.flows, fk)
			}
		}
	}
	if len(bs) == 0 {
		delete(r.index, aor)
		r.metrics.bindings.Set(float64(r.bindingCountLocked()))
		return
	}
	st := aorState{count: len(bs)}
	for _, b := range bs {
		if st.next.IsZero() || b.Expires.Before(st.next) {
			st.next = b.Expires
		}
		fk := flowKey{transport: b.Transport, addr: b.Source}
		if !fk.stream() {
			continue
		}
		st.flows = append(st.flows, fk)
		aors := r.flows[fk]
		if aors == nil {
			aors = map[string]struct{}{}
			r.flows[fk] = aors
		}
		aors[aor] = struct{}{}
	}
	r.index[aor] = st
	r.metrics.bindings.Set(float64(r.bindingCountLocked()))
}

func (r *Registrar) bindingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bindingCountLocked()
}

func (r *Registrar) bindingCountLocked() int { return r.total }

// expire removes the bindings that have lapsed.
func (r *Registrar) expire(ctx context.Context) {
	now := r.now()
	var due []string
	r.mu.Lock()
	for aor, st := range r.index {
		if !st.next.After(now) {
			due = append(due, aor)
		}
	}
	r.mu.Unlock()
	for _, aor := range due {
		bs, err := r.store.Update(ctx, aor, func(cur []location.Binding) ([]location.Binding, error) {
			return live(cur, now), nil
		})
		if err != nil {
			r.log.Error("expire bindings", "aor", aor, "error", err)
			continue
		}
		r.noteBindings(aor, bs)
		r.log.Debug("bindings expired", "aor", aor, "left", len(bs))
	}
}

// dropFlow removes the bindings reached through a stream flow that closed.
func (r *Registrar) dropFlow(fk flowKey) {
	r.mu.Lock()
	var aors []string
	for aor := range r.flows[fk] {
		aors = append(aors, aor)
	}
	delete(r.flows, fk)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, aor := range aors {
		bs, err := r.store.Update(ctx, aor, func(cur []location.Binding) ([]location.Binding, error) {
			out := cur[:0:0]
			for _, b := range cur {
				if b.Transport != fk.transport || b.Source != fk.addr {
					out = append(out, b)
				}
			}
			return out, nil
		})
		if err != nil {
			r.log.Error("drop bindings of closed flow", "aor", aor, "flow", fk.String(), "error", err)
			continue
		}
		r.noteBindings(aor, bs)
		r.log.Info("flow closed, bindings dropped", "aor", aor, "flow", fk.String())
	}
}

// live returns the bindings of bs that have not lapsed at now, in bs's
// memory: stores hand out slices their caller may modify.
func live(bs []location.Binding, now time.Time) []location.Binding {
	out := bs[:0]
	for _, b := range bs {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}
