package boltstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/boltstore"
)

func Example() {
	dir, err := os.MkdirTemp("", "boltstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := boltstore.Open(filepath.Join(dir, "data", "bindings.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// A REGISTER adds a binding; Update returns once it is on disk.
	bs, err := s.Update(ctx, "sip:alice@example.com", func(cur []location.Binding) ([]location.Binding, error) {
		return append(cur, location.Binding{
			AOR:     "sip:alice@example.com",
			Contact: "sip:alice@192.0.2.10:5060",
			Expires: now.Add(time.Hour),
			CallID:  "a84b4c76e66710", CSeq: 314159,
			Transport: "UDP", Source: "192.0.2.10:5060",
			Updated: now,
		}), nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(bs), bs[0].Contact, bs[0].Expires)

	if _, err := s.Lookup(ctx, "sip:bob@example.com"); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1 sip:alice@192.0.2.10:5060 2026-01-02 04:04:05 +0000 UTC
	// location: not found: sip:bob@example.com
}
