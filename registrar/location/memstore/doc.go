// Package memstore is an in-memory location.Store: a map behind a mutex.
//
// It is what tests use, and suits a registrar that may lose its bindings
// on restart (clients re-register within their expiry). Nothing is
// durable: Update returns as soon as the map holds the new set.
//
// Times are kept to the nanosecond, without the monotonic clock reading,
// so that they compare as they would after a round trip through a
// persistent store.
package memstore
