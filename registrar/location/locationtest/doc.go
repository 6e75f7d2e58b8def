// Package locationtest checks implementations of location.Store against
// its contract, the way testing/fstest.TestFS checks an fs.FS.
//
// Every store's tests call Run; a store that persists its bindings also
// calls RunDurable, and its benchmarks call Benchmark so that stores can be
// compared:
//
//	func TestContract(t *testing.T) {
//		locationtest.Run(t, func(t *testing.T) location.Store { return memstore.New() })
//	}
//
// The suite stores times at millisecond precision and expects them back
// Equal; given finer times, it accepts them back exact or truncated to the
// millisecond, never later (see location.Binding).
package locationtest
