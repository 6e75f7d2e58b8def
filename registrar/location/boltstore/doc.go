// Package boltstore is the registrar's default location.Store: bindings in
// an embedded bbolt file (go.etcd.io/bbolt) in the data directory.
//
// # Durability
//
// Update returns only once its write transaction has committed and been
// fsynced, so a REGISTER answered 200 survives a restart, a kill -9 or a
// power cut. Concurrent Updates are grouped by bbolt's Batch into one
// transaction and one fsync, so durability does not cap throughput at one
// fsync per REGISTER: an Update waits up to the batch delay (10 ms by
// default, see WithBatchDelay) for others to share its commit.
//
// # Format
//
// One bucket, "bindings", maps each AOR to the JSON array of its bindings,
// in the encoding location.Binding's field tags give. Times are RFC 3339
// with nanoseconds, so they come back exact, as the same instant. A later
// format will start its values with a byte other than '['.
//
// # Locking
//
// bbolt locks the file: a second Open of it, from this process or another,
// fails after a second with ErrLocked.
package boltstore
