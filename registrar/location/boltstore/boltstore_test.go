package boltstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/boltstore"
	"github.com/sipline/sipline/registrar/location/locationtest"
)

func open(t testing.TB, dir string) *boltstore.Store {
	s, err := boltstore.Open(filepath.Join(dir, "sub", "bindings.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	locationtest.Run(t, func(t *testing.T) location.Store { return open(t, t.TempDir()) })
	locationtest.RunDurable(t, func(t *testing.T, dir string) location.Store { return open(t, dir) })
}

func TestASecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	_, err := boltstore.Open(filepath.Join(dir, "sub", "bindings.db"))
	if err == nil {
		t.Fatal("a second open of a locked file succeeded")
	}
	t.Log(err)
}

func TestConcurrentUpdatesShareCommits(t *testing.T) {
	s := open(t, t.TempDir())
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			aor := fmt.Sprintf("sip:u%d@x", i)
			if _, err := s.Update(context.Background(), aor, func(cur []location.Binding) ([]location.Binding, error) {
				return append(cur, locationtest.Binding(aor, i)), nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c := s.Commits(); c >= n || c == 0 {
		t.Fatalf("%d updates took %d commits: not grouped", n, c)
	} else {
		t.Logf("%d updates in %d commits", n, c)
	}
}

func BenchmarkUpdateParallel(b *testing.B) {
	s := open(b, b.TempDir())
	var mu sync.Mutex
	i := 0
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i++
			aor := fmt.Sprintf("sip:u%d@x", i%10000)
			mu.Unlock()
			if _, err := s.Update(context.Background(), aor, func([]location.Binding) ([]location.Binding, error) {
				return []location.Binding{locationtest.Binding(aor, 1)}, nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	s := open(b, b.TempDir())
	ctx := context.Background()
	for i := range 1000 {
		aor := fmt.Sprintf("sip:u%d@x", i)
		_, _ = s.Update(ctx, aor, func([]location.Binding) ([]location.Binding, error) {
			return []location.Binding{locationtest.Binding(aor, i)}, nil
		})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Lookup(ctx, "sip:u500@x"); err != nil {
			b.Fatal(err)
		}
	}
}
