// Package boltstore is the registrar's default location.Store: bindings in
// an embedded bbolt file, durable before Update returns.
//
// Concurrent Updates are grouped into one write transaction and one fsync
// by bbolt's Batch, so durability does not cap throughput at one fsync per
// REGISTER.
package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sipline/sipline/registrar/location"
)

var bucket = []byte("bindings")

// Store keeps each AOR's bindings as one JSON value in a bbolt file.
type Store struct {
	db      *bolt.DB
	path    string
	lastTx  atomic.Int64 // ID of the write transaction last seen
	commits atomic.Int64
}

var _ location.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*bolt.DB)

// WithBatchDelay sets how long an Update may wait for others to share its
// commit. bbolt's default is 10 ms.
func WithBatchDelay(d time.Duration) Option { return func(db *bolt.DB) { db.MaxBatchDelay = d } }

// Open opens or creates the store at path, creating its directory. Another
// process holding the file makes Open fail after a second.
func Open(path string, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("boltstore: %s is locked by another process: %w", path, err)
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	for _, o := range opts {
		o(db)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: init %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Update implements location.Store.
func (s *Store) Update(ctx context.Context, aor string, fn location.UpdateFunc) ([]location.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []location.Binding
	err := s.db.Batch(func(tx *bolt.Tx) error {
		if id := int64(tx.ID()); s.lastTx.Swap(id) != id {
			tx.OnCommit(func() { s.commits.Add(1) })
		}
		b := tx.Bucket(bucket)
		cur, err := decode(aor, b.Get([]byte(aor)))
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		if len(next) == 0 {
			out = nil
			return b.Delete([]byte(aor))
		}
		v, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("boltstore: encode %s: %w", aor, err)
		}
		out = next
		return b.Put([]byte(aor), v)
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// Lookup implements location.Store.
func (s *Store) Lookup(ctx context.Context, aor string) ([]location.Binding, error) {
	var out []location.Binding
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(aor))
		if v == nil {
			return fmt.Errorf("%w: %s", location.ErrNotFound, aor)
		}
		var err error
		out, err = decode(aor, v)
		return err
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// Range implements location.Store. fn runs inside one read transaction,
// so it sees a consistent snapshot; it must not call Update.
func (s *Store) Range(ctx context.Context, fn func(aor string, bs []location.Binding) bool) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			bs, err := decode(string(k), v)
			if err != nil {
				return err
			}
			if !fn(string(k), bs) {
				return nil
			}
		}
		return nil
	})
	return s.wrap(err)
}

// Close implements location.Store.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close %s: %w", s.path, err)
	}
	return nil
}

// Commits reports how many write transactions Update has committed, which
// shows how well concurrent Updates are grouped.
func (s *Store) Commits() int64 { return s.commits.Load() }

func (s *Store) wrap(err error) error {
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %s: %w", location.ErrClosed, s.path, err)
	}
	return err
}

func decode(aor string, v []byte) ([]location.Binding, error) {
	if v == nil {
		return nil, nil
	}
	var bs []location.Binding
	if err := json.Unmarshal(v, &bs); err != nil {
		return nil, fmt.Errorf("boltstore: decode %s: %w", aor, err)
	}
	return bs, nil
}
