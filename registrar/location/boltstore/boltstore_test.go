package boltstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/locationtest"
)

func open(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	locationtest.Run(t, func(t *testing.T) location.Store {
		return open(t, filepath.Join(t.TempDir(), "bindings.db"))
	})
}

func TestDurable(t *testing.T) {
	locationtest.RunDurable(t, func(t *testing.T, dir string) location.Store {
		return open(t, filepath.Join(dir, "data", "bindings.db"))
	})
}

func BenchmarkStore(b *testing.B) {
	locationtest.Benchmark(b, func(b *testing.B) location.Store {
		return open(b, filepath.Join(b.TempDir(), "bindings.db"))
	})
}

func binding(aor string, cseq uint32) location.Binding {
	return location.Binding{
		AOR: aor, Contact: "sip:u@192.0.2.1:5060", CallID: "c", CSeq: cseq,
		Expires: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Transport: "UDP", Source: "192.0.2.1:5060",
	}
}

func appendOne(b location.Binding) location.UpdateFunc {
	return func(cur []location.Binding) ([]location.Binding, error) { return append(cur, b), nil }
}

// commits returns the ID of the last committed write transaction, which
// bbolt increases by one per commit.
func commits(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOpen(t *testing.T) {
	for _, c := range []struct {
		name    string
		prepare func(t *testing.T, path string)
		opts    []Option
		fails   bool
		is      error // if not nil, the error Open's must match
	}{
		{
			name: "open creates the file and its missing directories",
		},
		{
			name:    "open of a file another store holds fails with ErrLocked",
			prepare: func(t *testing.T, path string) { open(t, path) },
			fails:   true,
			is:      ErrLocked,
		},
		{
			name: "open of a file that is not a bbolt file fails",
			prepare: func(t *testing.T, path string) {
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, bytes.Repeat([]byte("not a database\n"), 1000), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			fails: true,
		},
		{
			name:  "a negative batch delay is an invalid option",
			opts:  []Option{WithBatchDelay(-time.Millisecond)},
			fails: true,
			is:    ErrInvalidOption,
		},
		{
			name: "a zero batch delay is valid",
			opts: []Option{WithBatchDelay(0)},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a", "b", "bindings.db")
			if c.prepare != nil {
				c.prepare(t, path)
			}
			start := time.Now()
			s, err := Open(path, c.opts...)
			if !c.fails {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for _, dir := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
					if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
						t.Errorf("directory %s: %v, %v; want mode 0700", dir, fi.Mode(), err)
					}
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err = %v, want %v", err, c.is)
			}
			if c.prepare != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if d := time.Since(start); d > 5*lockTimeout {
				t.Errorf("Open took %v to fail", d)
			}
		})
	}
}

func TestUpdateOfAnInvalidAOR(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "bindings.db"))
	for _, c := range []struct {
		name string
		aor  string
	}{
		{"an empty AOR is invalid", ""},
		{"an AOR longer than a bbolt key is invalid", "sip:" + strings.Repeat("a", bolt.MaxKeySize)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Update(context.Background(), c.aor, appendOne(binding(c.aor, 1)))
			if !errors.Is(err, ErrInvalidAOR) {
				t.Fatalf("Update: %v, want ErrInvalidAOR", err)
			}
			if _, err := s.Lookup(context.Background(), c.aor); !errors.Is(err, location.ErrNotFound) {
				t.Fatalf("Lookup: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestACorruptRecordFailsOnlyItsAOR(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "bindings.db"))
	const bad, good = "sip:bad@example.com", "sip:good@example.com"
	if _, err := s.Update(ctx, good, appendOne(binding(good, 1))); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).Put([]byte(bad), []byte(`[{"aor":`))
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		do   func() error
	}{
		{"lookup fails", func() error { _, err := s.Lookup(ctx, bad); return err }},
		{"update fails without calling fn", func() error {
			_, err := s.Update(ctx, bad, func([]location.Binding) ([]location.Binding, error) {
				t.Error("fn called")
				return nil, nil
			})
			return err
		}},
		{"range fails", func() error {
			return s.Range(ctx, func(string, []location.Binding) bool { return true })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if err == nil || errors.Is(err, location.ErrNotFound) || !strings.Contains(err.Error(), bad) {
				t.Fatalf("err = %v, want one naming %s", err, bad)
			}
		})
	}
	if _, err := s.Lookup(ctx, good); err != nil {
		t.Fatalf("Lookup(%s): %v", good, err)
	}
}

// TestConcurrentUpdatesShareCommits shows the grouping that lets durable
// Updates outrun one fsync each.
func TestConcurrentUpdatesShareCommits(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "bindings.db"))
	const n = 200
	var (
		wg    sync.WaitGroup
		calls atomic.Int64
	)
	start := make(chan struct{})
	boom := errors.New("boom")
	before := commits(t, s)
	for i := range n {
		wg.Go(func() {
			aor := fmt.Sprintf("sip:user%d@example.com", i)
			<-start
			_, err := s.Update(ctx, aor, func(cur []location.Binding) ([]location.Binding, error) {
				calls.Add(1)
				if i%4 == 0 {
					return nil, boom // must not roll back the others' batch
				}
				return append(cur, binding(aor, uint32(i))), nil
			})
			if (i%4 == 0 && !errors.Is(err, boom)) || (i%4 != 0 && err != nil) {
				t.Errorf("Update(%s): %v", aor, err)
			}
		})
	}
	close(start)
	wg.Wait()
	c := commits(t, s) - before
	t.Logf("%d concurrent updates took %d commits", n, c)
	if c < 1 || c >= n {
		t.Errorf("%d concurrent updates took %d commits, want fewer", n, c)
	}
	if got := calls.Load(); got != n {
		t.Errorf("fn ran %d times for %d updates: errors from fn retried the batch", got, n)
	}
	found := 0
	if err := s.Range(ctx, func(string, []location.Binding) bool { found++; return true }); err != nil {
		t.Fatal(err)
	}
	if want := n - n/4; found != want {
		t.Errorf("%d AORs stored, want %d", found, want)
	}
}

func TestCloseWaitsForUpdatesInProgress(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bindings.db")
	s := open(t, path, WithBatchDelay(200*time.Millisecond))
	entered := make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := s.Update(ctx, "sip:alice@example.com", func(cur []location.Binding) ([]location.Binding, error) {
			select {
			case <-entered:
			default:
				close(entered)
			}
			return appendOne(binding("sip:alice@example.com", 1))(cur)
		})
		done <- err
	}()
	// Wait until the Update holds s.mu, queued for 200 ms before fn runs.
	for s.mu.TryLock() {
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	default:
		t.Fatal("Close returned before the queued Update ran")
	}
	if err := <-done; err != nil {
		t.Fatalf("Update: %v", err)
	}
	s = open(t, path)
	if _, err := s.Lookup(ctx, "sip:alice@example.com"); err != nil {
		t.Fatalf("Lookup after reopen: %v", err)
	}
}

// writerEnv names the file the writer process of
// TestAcknowledgedUpdatesSurviveKill9 writes to.
const writerEnv = "BOLTSTORE_TEST_WRITER_PATH"

// TestAcknowledgedUpdatesSurviveKill9 runs a process that updates the
// store from several goroutines and reports each Update that returned,
// kills it with SIGKILL, and checks every reported Update is in the file.
func TestAcknowledgedUpdatesSurviveKill9(t *testing.T) {
	if path := os.Getenv(writerEnv); path != "" {
		write(path)
		return
	}
	path := filepath.Join(t.TempDir(), "bindings.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedUpdatesSurviveKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), writerEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // in case the test fails early

	acked := map[string]uint32{} // AOR: highest CSeq acknowledged
	n := 0
	sc := bufio.NewScanner(out)
	for n < 300 && sc.Scan() {
		var aor string
		var cseq uint32
		if _, err := fmt.Sscanf(sc.Text(), "%s %d", &aor, &cseq); err != nil {
			continue // not ours
		}
		acked[aor] = max(acked[aor], cseq)
		n++
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n < 300 {
		t.Fatalf("the writer acknowledged %d updates, then: %v\n%s", n, sc.Err(), stderr.Bytes())
	}

	s := open(t, path)
	for aor, last := range acked {
		bs, err := s.Lookup(context.Background(), aor)
		if err != nil {
			t.Errorf("Lookup(%s): %v", aor, err)
			continue
		}
		// Each Update appends the next CSeq, so 1..last must all be there.
		if len(bs) < int(last) {
			t.Errorf("%s: %d bindings after kill -9, want at least the %d acknowledged", aor, len(bs), last)
			continue
		}
		for i := range last {
			if bs[i].CSeq != i+1 {
				t.Errorf("%s: binding %d has CSeq %d, want %d", aor, i, bs[i].CSeq, i+1)
			}
		}
	}
	t.Logf("%d acknowledged updates of %d AORs survived kill -9", n, len(acked))
}

// write is the writer process of TestAcknowledgedUpdatesSurviveKill9: it
// appends to 8 AORs, printing "aor cseq" as each Update returns, until it
// is killed (or a minute is up).
func write(path string) {
	s, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			aor := fmt.Sprintf("sip:writer%d@example.com", g)
			for cseq := uint32(1); time.Now().Before(deadline); cseq++ {
				if _, err := s.Update(context.Background(), aor, appendOne(binding(aor, cseq))); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Printf("%s %d\n", aor, cseq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(1)
}
