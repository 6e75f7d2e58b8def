package locationtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipline/sipline/registrar/location"
)

// epoch returns the base of the suite's times: millisecond precision, in
// a zone other than UTC and Local so that a store that keeps only the
// instant still passes.
func epoch() time.Time {
	return time.Date(2026, 5, 6, 7, 8, 9, 123_000_000, time.FixedZone("UTC+2", 2*60*60))
}

// binding returns a binding of aor with every field set, distinct for each i.
func binding(aor string, i int) location.Binding {
	return location.Binding{
		AOR:       aor,
		Contact:   fmt.Sprintf("sip:user%d@192.0.2.%d:5060;transport=tcp;ob", i, i%250+1),
		Q:         500 + i%500,
		Expires:   epoch().Add(time.Duration(i)*time.Minute + 3600*time.Second),
		CallID:    fmt.Sprintf("call-%d@192.0.2.1", i),
		CSeq:      uint32(i + 1),
		Instance:  fmt.Sprintf("<urn:uuid:00000000-0000-4000-8000-%012d>", i),
		RegID:     i%3 + 1,
		Transport: "TCP",
		Source:    fmt.Sprintf("192.0.2.%d:%d", i%250+1, 40000+i),
		UserAgent: `Linphone "Desktop"/5.2 (ünïcode; tab	and \ backslash)`,
		Updated:   epoch().Add(time.Duration(i) * time.Millisecond).UTC(),
	}
}

// sparse returns a binding with only the fields a REGISTER always fills
// and a zero Updated time.
func sparse(aor string) location.Binding {
	return location.Binding{
		AOR:       aor,
		Contact:   "sip:bob@[2001:db8::1]:5062",
		Expires:   epoch(),
		CallID:    "c",
		Transport: "UDP",
		Source:    "[2001:db8::1]:5062",
	}
}

func set(bs ...location.Binding) location.UpdateFunc {
	return func([]location.Binding) ([]location.Binding, error) { return bs, nil }
}

func appendOne(b location.Binding) location.UpdateFunc {
	return func(cur []location.Binding) ([]location.Binding, error) { return append(cur, b), nil }
}

func removeAll([]location.Binding) ([]location.Binding, error) { return nil, nil }

// diff describes how got differs from want, or returns "" when they hold
// the same bindings in the same order, times compared with Equal.
func diff(got, want []location.Binding) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d bindings, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Expires.Equal(w.Expires) || !g.Updated.Equal(w.Updated) {
			return fmt.Sprintf("binding %d: got Expires %v Updated %v, want %v and %v", i, g.Expires, g.Updated, w.Expires, w.Updated)
		}
		g.Expires, g.Updated, w.Expires, w.Updated = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("binding %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	return ""
}

func mustUpdate(t *testing.T, s location.Store, aor string, fn location.UpdateFunc) []location.Binding {
	t.Helper()
	bs, err := s.Update(context.Background(), aor, fn)
	if err != nil {
		t.Fatalf("Update(%s): %v", aor, err)
	}
	return bs
}

func mustLookup(t *testing.T, s location.Store, aor string) []location.Binding {
	t.Helper()
	bs, err := s.Lookup(context.Background(), aor)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", aor, err)
	}
	return bs
}

func wantNotFound(t *testing.T, s location.Store, aor string) {
	t.Helper()
	if bs, err := s.Lookup(context.Background(), aor); !errors.Is(err, location.ErrNotFound) {
		t.Fatalf("Lookup(%s) = %v, %v; want ErrNotFound", aor, bs, err)
	}
}

// fill stores want, one Update per AOR, all at once: a store that groups
// commits is slow at one Update after another.
func fill(t testing.TB, s location.Store, want map[string][]location.Binding) {
	t.Helper()
	var (
		wg     sync.WaitGroup
		failed atomic.Bool
	)
	for aor, bs := range want {
		wg.Go(func() {
			if _, err := s.Update(context.Background(), aor, set(bs...)); err != nil {
				t.Errorf("Update(%s): %v", aor, err)
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}
}

// many returns n AORs of one or two bindings each.
func many(n int) map[string][]location.Binding {
	out := make(map[string][]location.Binding, n)
	for i := range n {
		aor := fmt.Sprintf("sip:user%d@example.com", i)
		out[aor] = []location.Binding{binding(aor, i)}
		if i%2 == 0 {
			out[aor] = append(out[aor], binding(aor, i+n))
		}
	}
	return out
}

// all returns what Range reports, failing on an AOR reported twice.
func all(t *testing.T, s location.Store) map[string][]location.Binding {
	t.Helper()
	out := map[string][]location.Binding{}
	err := s.Range(context.Background(), func(aor string, bs []location.Binding) bool {
		if _, dup := out[aor]; dup {
			t.Errorf("Range reported %s twice", aor)
		}
		out[aor] = bs
		return true
	})
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	return out
}

func wantAll(t *testing.T, s location.Store, want map[string][]location.Binding) {
	t.Helper()
	got := all(t, s)
	for aor, bs := range want {
		if d := diff(got[aor], bs); d != "" {
			t.Errorf("Range, %s: %s", aor, d)
		}
	}
	for aor := range got {
		if _, ok := want[aor]; !ok {
			t.Errorf("Range reported %s, which has no bindings", aor)
		}
	}
}

// Run checks the stores newStore returns against the location.Store
// contract, each subtest on a new, empty store. Run closes the stores it
// gets, so newStore need not.
func Run(t *testing.T, newStore func(t *testing.T) location.Store) {
	t.Helper()
	open := func(t *testing.T) location.Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	ctx := context.Background()
	const aor = "sip:alice@example.com"

	t.Run("lookup of an unknown AOR is ErrNotFound", func(t *testing.T) {
		s := open(t)
		wantNotFound(t, s, aor)
		mustUpdate(t, s, "sip:bob@example.com", appendOne(binding("sip:bob@example.com", 1)))
		wantNotFound(t, s, aor)
	})

	t.Run("update of a new AOR gives fn no bindings and returns what it stored", func(t *testing.T) {
		s := open(t)
		want := []location.Binding{binding(aor, 1)}
		got := mustUpdate(t, s, aor, func(cur []location.Binding) ([]location.Binding, error) {
			if len(cur) != 0 {
				t.Errorf("fn got %d bindings for a new AOR", len(cur))
			}
			return slices.Clone(want), nil
		})
		if d := diff(got, want); d != "" {
			t.Fatalf("Update returned: %s", d)
		}
		if d := diff(mustLookup(t, s, aor), want); d != "" {
			t.Fatalf("Lookup: %s", d)
		}
	})

	t.Run("update gives fn the current bindings in order", func(t *testing.T) {
		s := open(t)
		first := []location.Binding{binding(aor, 3), binding(aor, 1), binding(aor, 2)}
		mustUpdate(t, s, aor, set(first...))
		var seen []location.Binding
		got := mustUpdate(t, s, aor, func(cur []location.Binding) ([]location.Binding, error) {
			seen = slices.Clone(cur)
			return append(cur[1:], binding(aor, 4)), nil
		})
		if d := diff(seen, first); d != "" {
			t.Fatalf("fn got: %s", d)
		}
		want := []location.Binding{binding(aor, 1), binding(aor, 2), binding(aor, 4)}
		if d := diff(got, want); d != "" {
			t.Fatalf("Update returned: %s", d)
		}
		if d := diff(mustLookup(t, s, aor), want); d != "" {
			t.Fatalf("Lookup: %s", d)
		}
	})

	t.Run("every field of several contacts round-trips exactly", func(t *testing.T) {
		s := open(t)
		want := []location.Binding{binding(aor, 1), sparse(aor), binding(aor, 499), binding(aor, 2)}
		want[3].Expires = time.Unix(0, 0).Add(time.Millisecond)
		want[3].CSeq = 1<<32 - 1
		want[3].Q = 1000
		got := mustUpdate(t, s, aor, set(want...))
		if d := diff(got, want); d != "" {
			t.Fatalf("Update returned: %s", d)
		}
		got = mustLookup(t, s, aor)
		if d := diff(got, want); d != "" {
			t.Fatalf("Lookup: %s", d)
		}
		if !got[1].Updated.IsZero() {
			t.Errorf("a zero Updated came back as %v", got[1].Updated)
		}
	})

	t.Run("times finer than a millisecond come back exact or truncated", func(t *testing.T) {
		s := open(t)
		b := binding(aor, 1)
		b.Expires = epoch().Add(999_999 * time.Nanosecond)
		b.Updated = time.Now() // with a monotonic reading and a Local zone
		for _, got := range [][]location.Binding{mustUpdate(t, s, aor, set(b)), mustLookup(t, s, aor)} {
			for _, c := range []struct {
				name      string
				got, want time.Time
			}{
				{"Expires", got[0].Expires, b.Expires},
				{"Updated", got[0].Updated, b.Updated},
			} {
				if c.got.After(c.want) || c.got.Before(c.want.Truncate(time.Millisecond)) {
					t.Errorf("%s %v came back as %v", c.name, c.want, c.got)
				}
			}
		}
	})

	for _, c := range []struct {
		name string
		fn   location.UpdateFunc
	}{
		{"nil from fn removes the AOR", removeAll},
		{"an empty slice from fn removes the AOR", set()},
		{"fn removing the last binding removes the AOR", func(cur []location.Binding) ([]location.Binding, error) { return cur[:0], nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			mustUpdate(t, s, aor, set(binding(aor, 1)))
			mustUpdate(t, s, "sip:bob@example.com", set(binding("sip:bob@example.com", 2)))
			if got := mustUpdate(t, s, aor, c.fn); len(got) != 0 {
				t.Fatalf("Update returned %v, want none", got)
			}
			wantNotFound(t, s, aor)
			wantAll(t, s, map[string][]location.Binding{"sip:bob@example.com": {binding("sip:bob@example.com", 2)}})
		})
	}

	t.Run("an empty set for an unknown AOR stores nothing", func(t *testing.T) {
		s := open(t)
		if got := mustUpdate(t, s, aor, removeAll); len(got) != 0 {
			t.Fatalf("Update returned %v, want none", got)
		}
		wantNotFound(t, s, aor)
		wantAll(t, s, nil)
	})

	t.Run("an error from fn is returned and leaves the bindings as they were", func(t *testing.T) {
		s := open(t)
		want := []location.Binding{binding(aor, 1), binding(aor, 2)}
		mustUpdate(t, s, aor, set(want...))
		boom := errors.New("boom")
		for _, target := range []string{aor, "sip:new@example.com"} {
			got, err := s.Update(ctx, target, func(cur []location.Binding) ([]location.Binding, error) {
				for i := range cur {
					cur[i].Contact = "sip:scribbled@example.com"
				}
				return append(cur, binding(target, 3)), fmt.Errorf("rejected %s: %w", target, boom)
			})
			if !errors.Is(err, boom) || got != nil {
				t.Fatalf("Update(%s) = %v, %v; want nil and boom", target, got, err)
			}
		}
		if d := diff(mustLookup(t, s, aor), want); d != "" {
			t.Fatalf("Lookup: %s", d)
		}
		wantNotFound(t, s, "sip:new@example.com")
	})

	t.Run("slices handed out belong to the caller", func(t *testing.T) {
		s := open(t)
		want := []location.Binding{binding(aor, 1), binding(aor, 2)}
		mine := slices.Clone(want)
		got := mustUpdate(t, s, aor, set(mine...))
		mine[0].Contact = "sip:changed-after-update@example.com"
		got[1].Contact = "sip:changed-update-result@example.com"
		got = mustLookup(t, s, aor)
		got[0].CallID = "changed-lookup-result"
		_ = s.Range(ctx, func(_ string, bs []location.Binding) bool {
			bs[0].Source = "changed-by-range"
			return true
		})
		if d := diff(mustLookup(t, s, aor), want); d != "" {
			t.Fatalf("the store shares memory with its callers: %s", d)
		}
	})

	t.Run("concurrent updates of one AOR are atomic", func(t *testing.T) {
		s := open(t)
		const n = 50
		var writers, readers sync.WaitGroup
		done := make(chan struct{})
		start := make(chan struct{})
		for i := range n {
			writers.Go(func() {
				<-start
				if _, err := s.Update(ctx, aor, appendOne(binding(aor, i))); err != nil {
					t.Error(err)
				}
			})
		}
		for range 2 { // readers for the race detector
			readers.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					bs, err := s.Lookup(ctx, aor)
					if (err != nil && !errors.Is(err, location.ErrNotFound)) || len(bs) > n {
						t.Errorf("Lookup during updates: %d bindings, %v", len(bs), err)
						return
					}
					if err := s.Range(ctx, func(string, []location.Binding) bool { return true }); err != nil {
						t.Errorf("Range during updates: %v", err)
						return
					}
				}
			})
		}
		close(start)
		writers.Wait()
		close(done)
		readers.Wait()
		got := mustLookup(t, s, aor)
		seen := map[string]bool{}
		for _, b := range got {
			seen[b.CallID] = true
		}
		for i := range n {
			if !seen[binding(aor, i).CallID] {
				t.Errorf("binding %d was lost", i)
			}
		}
		if len(got) != n {
			t.Fatalf("got %d bindings, want %d", len(got), n)
		}
	})

	// The Range subtests use enough AORs that a store reading them in
	// pages reads several.
	t.Run("range visits every AOR once with its bindings", func(t *testing.T) {
		s := open(t)
		want := many(1000)
		fill(t, s, want)
		wantAll(t, s, want)
	})

	t.Run("range stops when fn returns false", func(t *testing.T) {
		s := open(t)
		fill(t, s, many(1000))
		for _, stop := range []int{1, 3, 999} {
			n := 0
			if err := s.Range(ctx, func(string, []location.Binding) bool { n++; return n < stop }); err != nil {
				t.Fatal(err)
			}
			if n != stop {
				t.Errorf("fn returned false on call %d but ran %d times", stop, n)
			}
		}
	})

	t.Run("range of an empty store calls nothing", func(t *testing.T) {
		s := open(t)
		wantAll(t, s, nil)
	})

	t.Run("range's fn may look up and update the store", func(t *testing.T) {
		s := open(t)
		want := many(150)
		fill(t, s, want)
		n := 0
		err := s.Range(ctx, func(aor string, bs []location.Binding) bool {
			n++
			if got, err := s.Lookup(ctx, aor); err != nil || diff(got, bs) != "" {
				t.Errorf("Lookup(%s) in Range: %v, %v; want %v", aor, got, err, bs)
			}
			if _, err := s.Update(ctx, aor, removeAll); err != nil {
				t.Errorf("Update(%s) in Range: %v", aor, err)
			}
			return true
		})
		if err != nil || n != len(want) {
			t.Fatalf("Range visited %d of %d AORs: %v", n, len(want), err)
		}
		wantAll(t, s, nil)
	})

	t.Run("a canceled context fails every method and changes nothing", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, aor, set(binding(aor, 1)))
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Update(canceled, aor, removeAll); !errors.Is(err, context.Canceled) {
			t.Errorf("Update: %v, want context.Canceled", err)
		}
		if _, err := s.Lookup(canceled, aor); !errors.Is(err, context.Canceled) {
			t.Errorf("Lookup: %v, want context.Canceled", err)
		}
		if err := s.Range(canceled, func(string, []location.Binding) bool {
			t.Error("Range called fn")
			return true
		}); !errors.Is(err, context.Canceled) {
			t.Errorf("Range: %v, want context.Canceled", err)
		}
		wantAll(t, s, map[string][]location.Binding{aor: {binding(aor, 1)}})
	})

	t.Run("close is idempotent", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, aor, set(binding(aor, 1)))
		for i := range 3 {
			if err := s.Close(); err != nil {
				t.Fatalf("Close %d: %v", i+1, err)
			}
		}
	})

	t.Run("use after close is ErrClosed", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, aor, set(binding(aor, 1)))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, aor, appendOne(binding(aor, 2))); !errors.Is(err, location.ErrClosed) {
			t.Errorf("Update: %v, want ErrClosed", err)
		}
		if _, err := s.Lookup(ctx, aor); !errors.Is(err, location.ErrClosed) {
			t.Errorf("Lookup: %v, want ErrClosed", err)
		}
		if err := s.Range(ctx, func(string, []location.Binding) bool {
			t.Error("Range called fn")
			return true
		}); !errors.Is(err, location.ErrClosed) {
			t.Errorf("Range: %v, want ErrClosed", err)
		}
	})
}
