package memstore_test

import (
	"testing"

	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/locationtest"
	"github.com/sipline/sipline/registrar/location/memstore"
)

func TestContract(t *testing.T) {
	locationtest.Run(t, func(t *testing.T) location.Store { return memstore.New() })
}
