package memstore_test

import (
	"context"
	"testing"

	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/locationtest"
	"github.com/sipline/sipline/registrar/location/memstore"
)

func TestContract(t *testing.T) {
	locationtest.Run(t, func(*testing.T) location.Store { return memstore.New() })
}

func TestTheZeroStoreIsReadyToUse(t *testing.T) {
	var s memstore.Store
	b := location.Binding{AOR: "sip:alice@example.com", Contact: "sip:alice@192.0.2.1"}
	if _, err := s.Update(context.Background(), b.AOR, func(cur []location.Binding) ([]location.Binding, error) {
		return append(cur, b), nil
	}); err != nil {
		t.Fatal(err)
	}
	if bs, err := s.Lookup(context.Background(), b.AOR); err != nil || len(bs) != 1 {
		t.Fatalf("Lookup = %v, %v", bs, err)
	}
}

func BenchmarkStore(b *testing.B) {
	locationtest.Benchmark(b, func(*testing.B) location.Store { return memstore.New() })
}
