// Package locationtest is the contract every location.Store passes, shaped
// like testing/fstest.TestFS: call Run from each implementation's tests.
package locationtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sipline/sipline/registrar/location"
)

// Binding returns a binding with every field set, distinct per i.
func Binding(aor string, i int) location.Binding {
	t := time.Date(2026, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	return location.Binding{
		AOR: aor, Contact: fmt.Sprintf("sip:u@10.0.0.%d:5060;transport=tcp", i%250+1),
		Q: 500 + i%500, Expires: t.Add(time.Duration(i) * time.Hour), CallID: fmt.Sprintf("call-%d", i), CSeq: uint32(i + 1),
		Instance: fmt.Sprintf("<urn:uuid:%08d>", i), RegID: i%3 + 1,
		Transport: "TCP", Source: fmt.Sprintf("10.0.0.%d:%d", i%250+1, 40000+i),
		UserAgent: "test/1.0", Updated: t,
	}
}

func appendOne(b location.Binding) location.UpdateFunc {
	return func(cur []location.Binding) ([]location.Binding, error) { return append(cur, b), nil }
}

func equal(t *testing.T, got, want []location.Binding) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d bindings, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Expires.Equal(w.Expires) || !g.Updated.Equal(w.Updated) {
			t.Fatalf("binding %d times: got %v/%v, want %v/%v", i, g.Expires, g.Updated, w.Expires, w.Updated)
		}
		g.Expires, g.Updated, w.Expires, w.Updated = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("binding %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// Run checks newStore's stores against the location.Store contract. Times
// must round-trip to the millisecond.
func Run(t *testing.T, newStore func(t *testing.T) location.Store) {
	ctx := context.Background()
	t.Run("lookup of an unknown AOR is ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Lookup(ctx, "sip:nobody@x"); !errors.Is(err, location.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("update stores several contacts exactly", func(t *testing.T) {
		s := newStore(t)
		want := []location.Binding{Binding("sip:a@x", 1), Binding("sip:a@x", 2), Binding("sip:a@x", 3)}
		got, err := s.Update(ctx, "sip:a@x", func(cur []location.Binding) ([]location.Binding, error) {
			if len(cur) != 0 {
				t.Errorf("a new AOR has %d bindings", len(cur))
			}
			return want, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, got, want)
		got, err = s.Lookup(ctx, "sip:a@x")
		if err != nil {
			t.Fatal(err)
		}
		equal(t, got, want)
	})
	t.Run("an empty set removes the AOR", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Update(ctx, "sip:a@x", appendOne(Binding("sip:a@x", 1))); err != nil {
			t.Fatal(err)
		}
		got, err := s.Update(ctx, "sip:a@x", func([]location.Binding) ([]location.Binding, error) { return nil, nil })
		if err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v", got, err)
		}
		if _, err := s.Lookup(ctx, "sip:a@x"); !errors.Is(err, location.ErrNotFound) {
			t.Fatalf("lookup after removal: %v", err)
		}
		if err := s.Range(ctx, func(aor string, _ []location.Binding) bool {
			t.Errorf("range lists removed %s", aor)
			return true
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an error from fn leaves the bindings as they were", func(t *testing.T) {
		s := newStore(t)
		want := []location.Binding{Binding("sip:a@x", 1)}
		if _, err := s.Update(ctx, "sip:a@x", appendOne(want[0])); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		_, err := s.Update(ctx, "sip:a@x", func([]location.Binding) ([]location.Binding, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		got, err := s.Lookup(ctx, "sip:a@x")
		if err != nil {
			t.Fatal(err)
		}
		equal(t, got, want)
	})
	t.Run("returned slices are the caller's", func(t *testing.T) {
		s := newStore(t)
		got, _ := s.Update(ctx, "sip:a@x", appendOne(Binding("sip:a@x", 1)))
		got[0].Contact = "changed"
		again, _ := s.Lookup(ctx, "sip:a@x")
		again[0].CallID = "changed"
		final, _ := s.Lookup(ctx, "sip:a@x")
		equal(t, final, []location.Binding{Binding("sip:a@x", 1)})
	})
	t.Run("concurrent updates of one AOR are atomic", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Update(ctx, "sip:a@x", appendOne(Binding("sip:a@x", i))); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, err := s.Lookup(ctx, "sip:a@x")
		if err != nil || len(got) != 50 {
			t.Fatalf("got %d bindings, %v; want 50", len(got), err)
		}
	})
	t.Run("range visits every AOR and stops when asked", func(t *testing.T) {
		s := newStore(t)
		for i := range 10 {
			aor := fmt.Sprintf("sip:u%d@x", i)
			if _, err := s.Update(ctx, aor, appendOne(Binding(aor, i))); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]bool{}
		if err := s.Range(ctx, func(aor string, bs []location.Binding) bool {
			if len(bs) != 1 || bs[0].AOR != aor {
				t.Errorf("%s: %v", aor, bs)
			}
			seen[aor] = true
			return true
		}); err != nil || len(seen) != 10 {
			t.Fatalf("saw %d AORs, %v", len(seen), err)
		}
		n := 0
		_ = s.Range(ctx, func(string, []location.Binding) bool { n++; return n < 3 })
		if n != 3 {
			t.Fatalf("range went on %d times after false", n)
		}
	})
	t.Run("close is idempotent and use after it fails", func(t *testing.T) {
		s := newStore(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if _, err := s.Update(ctx, "sip:a@x", appendOne(Binding("sip:a@x", 1))); err == nil {
			t.Fatal("update after close succeeded")
		}
		if _, err := s.Lookup(ctx, "sip:a@x"); err == nil || errors.Is(err, location.ErrNotFound) {
			t.Fatalf("lookup after close: %v", err)
		}
	})
}

// RunDurable checks that a persistent store keeps everything across a
// close and reopen of the same directory.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) location.Store) {
	t.Run("bindings survive a reopen", func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		s := open(t, dir)
		want := map[string][]location.Binding{}
		for i := range 20 {
			aor := fmt.Sprintf("sip:u%d@x", i%7)
			b := Binding(aor, i)
			want[aor] = append(want[aor], b)
			if _, err := s.Update(ctx, aor, appendOne(b)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t, dir)
		defer s.Close()
		for aor, bs := range want {
			got, err := s.Lookup(ctx, aor)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, got, bs)
		}
	})
}
