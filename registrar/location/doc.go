// Package location defines where the registrar keeps bindings: the Store
// interface, the Binding type and ErrNotFound. Implementations live in
// subpackages (memstore, boltstore) and all pass locationtest.Run.
package location
