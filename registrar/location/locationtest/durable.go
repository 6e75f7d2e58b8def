package locationtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sipline/sipline/registrar/location"
)

// RunDurable checks that stores open returns for a directory keep their
// bindings across a Close and a new open of the same directory. Each
// subtest uses its own directory. RunDurable closes the stores it gets.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) location.Store) {
	t.Helper()
	reopen := func(t *testing.T, dir string) location.Store {
		t.Helper()
		s := open(t, dir)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	closeStore := func(t *testing.T, s location.Store) {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}

	t.Run("bindings and removals survive a reopen", func(t *testing.T) {
		dir := t.TempDir()
		s := reopen(t, dir)
		want := many(300)
		want["sip:user1@example.com"] = append(want["sip:user1@example.com"], sparse("sip:user1@example.com"))
		fill(t, s, want)
		for _, aor := range []string{"sip:user3@example.com", "sip:user17@example.com"} {
			mustUpdate(t, s, aor, removeAll)
			delete(want, aor)
		}
		closeStore(t, s)

		s = reopen(t, dir)
		for aor, bs := range want {
			if d := diff(mustLookup(t, s, aor), bs); d != "" {
				t.Errorf("Lookup(%s) after reopen: %s", aor, d)
			}
		}
		wantNotFound(t, s, "sip:user3@example.com")
		wantAll(t, s, want)
	})

	t.Run("a reopened store takes updates and keeps them", func(t *testing.T) {
		dir := t.TempDir()
		const aor = "sip:alice@example.com"
		s := reopen(t, dir)
		mustUpdate(t, s, aor, set(binding(aor, 1)))
		closeStore(t, s)
		s = reopen(t, dir)
		mustUpdate(t, s, aor, appendOne(binding(aor, 2)))
		mustUpdate(t, s, "sip:bob@example.com", set(binding("sip:bob@example.com", 3)))
		closeStore(t, s)
		s = reopen(t, dir)
		wantAll(t, s, map[string][]location.Binding{
			aor:                   {binding(aor, 1), binding(aor, 2)},
			"sip:bob@example.com": {binding("sip:bob@example.com", 3)},
		})
	})

	t.Run("updates racing close either are kept or fail with ErrClosed", func(t *testing.T) {
		dir := t.TempDir()
		s := reopen(t, dir)
		const n = 100
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				aor := fmt.Sprintf("sip:user%d@example.com", i)
				_, errs[i] = s.Update(context.Background(), aor, set(binding(aor, i)))
			})
			if i == n/2 {
				wg.Go(func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
			}
		}
		wg.Wait()
		s = reopen(t, dir)
		want := map[string][]location.Binding{}
		for i, err := range errs {
			aor := fmt.Sprintf("sip:user%d@example.com", i)
			switch {
			case err == nil:
				want[aor] = []location.Binding{binding(aor, i)}
			case !errors.Is(err, location.ErrClosed):
				t.Errorf("Update(%s): %v, want success or ErrClosed", aor, err)
			}
		}
		t.Logf("%d of %d updates made it before Close", len(want), n)
		wantAll(t, s, want)
	})

	t.Run("a store emptied before close reopens empty", func(t *testing.T) {
		dir := t.TempDir()
		const aor = "sip:alice@example.com"
		s := reopen(t, dir)
		mustUpdate(t, s, aor, set(binding(aor, 1)))
		mustUpdate(t, s, aor, removeAll)
		closeStore(t, s)
		s = reopen(t, dir)
		wantNotFound(t, s, aor)
		wantAll(t, s, nil)
	})
}
