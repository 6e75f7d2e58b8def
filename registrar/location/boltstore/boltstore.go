package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sipline/sipline/registrar/location"
)

const (
	// DefaultBatchDelay is how long an Update waits, by default, for
	// others to share its commit. It is bbolt's own default.
	DefaultBatchDelay = 10 * time.Millisecond
	// lockTimeout is how long Open waits for the file lock.
	lockTimeout = time.Second
	// rangePage is how many AORs Range reads per read transaction.
	rangePage = 100
	// bucket holds the bindings of each AOR.
	bucket = "bindings"
)

// Store keeps bindings in a bbolt file.
type Store struct {
	db   *bolt.DB
	path string

	// mu is held shared by each Update and exclusively by Close, so that
	// Close waits for Updates in progress to commit.
	mu     sync.RWMutex
	closed bool
}

var _ location.Store = (*Store)(nil)

type config struct {
	batchDelay time.Duration
}

// Option configures a Store.
type Option func(*config) error

// WithBatchDelay sets how long an Update waits for others to share its
// commit (DefaultBatchDelay if not set). Zero commits at once, which
// groups only the Updates that arrive while a commit is under way.
func WithBatchDelay(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: batch delay %v is negative", ErrInvalidOption, d)
		}
		c.batchDelay = d
		return nil
	}
}

// Open opens the store in the file at path, creating the file and, with
// mode 0o700, its missing parent directories. It fails with ErrLocked if
// another Store holds the file for more than a second.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{batchDelay: DefaultBatchDelay}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: create the directory of %s: %w", path, err)
	}
	// NoSync stays false: a commit returns once the file is fsynced.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s: %w", ErrLocked, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	db.MaxBatchDelay = cfg.batchDelay
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bucket))
		return err
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("boltstore: initialize %s: %w", path, err), db.Close())
	}
	return &Store{db: db, path: path}, nil
}

// Update implements location.Store. It returns once the new set is
// committed and fsynced, having waited up to the batch delay to share the
// commit with other Updates. ctx is checked before the Update is queued;
// once queued, it completes.
//
// fn runs inside a bbolt write transaction, so it must not call the Store.
// An error from fn, or in decoding or encoding aor's bindings, fails only this
// Update, not the others that share its transaction.
func (s *Store) Update(ctx context.Context, aor string, fn location.UpdateFunc) ([]location.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore: update %s: %w", aor, err)
	}
	key, err := keyOf(aor)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("%w: update %s", location.ErrClosed, aor)
	}
	var (
		stored []location.Binding
		fnErr  error // fails this Update without failing the transaction
	)
	err = s.db.Batch(func(tx *bolt.Tx) error {
		// Batch runs this again if the transaction is retried.
		stored, fnErr = nil, nil
		b := tx.Bucket([]byte(bucket))
		cur, err := decode(aor, b.Get(key))
		if err != nil {
			fnErr = err
			return nil
		}
		next, err := fn(cur)
		if err != nil {
			fnErr = err
			return nil
		}
		if len(next) == 0 {
			return b.Delete(key)
		}
		if err := b.Put(key, encode(next)); err != nil {
			return err
		}
		stored = next
		return nil
	})
	if err != nil {
		return nil, s.fail("update "+aor, err)
	}
	if fnErr != nil {
		return nil, fnErr
	}
	return clone(stored), nil
}

// Lookup implements location.Store.
func (s *Store) Lookup(ctx context.Context, aor string) ([]location.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore: lookup %s: %w", aor, err)
	}
	var bs []location.Binding
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		bs, err = decode(aor, tx.Bucket([]byte(bucket)).Get([]byte(aor)))
		return err
	})
	if err != nil {
		return nil, s.fail("lookup "+aor, err)
	}
	if len(bs) == 0 {
		return nil, fmt.Errorf("%w: %s", location.ErrNotFound, aor)
	}
	return bs, nil
}

// Range implements location.Store. It reads the AORs in pages of a
// hundred, each in its own read transaction, and calls fn outside of them,
// so fn may take its time and call the Store. It visits the AORs in byte
// order of their names; each page is a consistent snapshot, the whole
// Range is not.
func (s *Store) Range(ctx context.Context, fn func(aor string, bindings []location.Binding) bool) error {
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("boltstore: range: %w", err)
		}
		page, err := s.page(after)
		if err != nil {
			return s.fail("range", err)
		}
		for _, e := range page {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("boltstore: range: %w", err)
			}
			if !fn(e.aor, e.bindings) {
				return nil
			}
		}
		if len(page) < rangePage {
			return nil
		}
		after = []byte(page[len(page)-1].aor)
	}
}

type entry struct {
	aor      string
	bindings []location.Binding
}

// page returns up to rangePage AORs, the first after the key after, or
// the first of all if after is nil.
func (s *Store) page(after []byte) ([]entry, error) {
	var out []entry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucket)).Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < rangePage; k, v = c.Next() {
			aor := string(k)
			bs, err := decode(aor, v)
			if err != nil {
				return err
			}
			out = append(out, entry{aor, bs})
		}
		return nil
	})
	return out, err
}

// Close implements location.Store. It waits for the Updates in progress
// to commit, then closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close %s: %w", s.path, err)
	}
	return nil
}

// fail wraps an error from bbolt, as ErrClosed if the file is closed.
func (s *Store) fail(op string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %s: %w", location.ErrClosed, op, err)
	}
	return fmt.Errorf("boltstore: %s in %s: %w", op, s.path, err)
}

func keyOf(aor string) ([]byte, error) {
	switch {
	case aor == "":
		return nil, fmt.Errorf("%w: empty", ErrInvalidAOR)
	case len(aor) > bolt.MaxKeySize:
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrInvalidAOR, len(aor), bolt.MaxKeySize)
	}
	return []byte(aor), nil
}

// clone copies bs as Lookup would return it: times without their
// monotonic clock reading.
func clone(bs []location.Binding) []location.Binding {
	if len(bs) == 0 {
		return nil
	}
	out := make([]location.Binding, len(bs))
	for i, b := range bs {
		b.Expires, b.Updated = b.Expires.Round(0), b.Updated.Round(0)
		out[i] = b
	}
	return out
}
