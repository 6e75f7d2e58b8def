package location

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound is returned by Lookup when an AOR has no bindings.
	ErrNotFound = errors.New("location: not found")
	// ErrClosed is returned by the methods of a Store used after Close.
	ErrClosed = errors.New("location: store closed")
)

// Binding is one registered contact of an address-of-record (RFC 3261 §10).
//
// A Store keeps bindings as it is given them: it applies no clock, so it
// returns expired bindings too. The registrar filters and purges them.
//
// A Store keeps the instant of each time to the millisecond or finer;
// finer parts may be truncated, never rounded up, so an Expires never
// moves later. It does not keep the Location or the monotonic clock
// reading: compare times with Equal, Before and After, not ==.
type Binding struct {
	// AOR is the canonical address-of-record, "sip:alice@example.com".
	AOR string `json:"aor"`
	// Contact is the contact URI as registered, without header parameters.
	Contact string `json:"contact"`
	// Q is the contact's q-value times 1000 (0..1000); 0 means none given.
	Q int `json:"q,omitempty"`
	// Expires is when the binding lapses.
	Expires time.Time `json:"expires"`
	// CallID and CSeq of the REGISTER that last refreshed the binding.
	CallID string `json:"call_id"`
	CSeq   uint32 `json:"cseq"`
	// Instance is the +sip.instance value and RegID the reg-id (RFC 5626), if any.
	Instance string `json:"instance,omitempty"`
	RegID    int    `json:"reg_id,omitempty"`
	// Transport ("UDP", "TCP", "TLS") and Source ("ip:port") the REGISTER
	// arrived on: the flow to reach the contact through.
	Transport string `json:"transport"`
	Source    string `json:"source"`
	// UserAgent is the registering client's User-Agent header.
	UserAgent string `json:"user_agent,omitempty"`
	// Updated is when the binding was last written.
	Updated time.Time `json:"updated"`
}

// UpdateFunc receives the bindings an AOR has now (possibly none) and
// returns the set it should have instead. An error aborts the update.
type UpdateFunc func(current []Binding) ([]Binding, error)

// Store keeps bindings. Implementations are safe for concurrent use, keep
// the order of an AOR's bindings, and hand out slices the caller may
// modify. After Close, every method but Close fails with ErrClosed.
// locationtest.Run checks this contract.
type Store interface {
	// Update atomically replaces the bindings of aor with what fn returns.
	// fn may run more than once and must not have side effects; it may
	// modify the slice it is given. Update returns the stored set once it
	// is durable; an empty set removes the AOR. An error from fn is
	// returned as is and leaves the bindings as they were.
	Update(ctx context.Context, aor string, fn UpdateFunc) ([]Binding, error)
	// Lookup returns the bindings of aor, or ErrNotFound when it has none.
	Lookup(ctx context.Context, aor string) ([]Binding, error)
	// Range calls fn for each AOR with its bindings, in no defined order,
	// until fn returns false. It visits once every AOR that has bindings
	// throughout the call; one added or removed meanwhile may be missed.
	// fn may call the Store's other methods.
	Range(ctx context.Context, fn func(aor string, bindings []Binding) bool) error
	// Close flushes and releases the store. It is idempotent.
	Close() error
}

// Immediate is implemented by a Store whose Update never waits for
// anything but its own lock: not for I/O, nor for a commit shared with
// other writers. The registrar then answers a UDP REGISTER on the
// goroutine that read it, as a Kamailio worker answers what it reads,
// and hands it to a pool of workers otherwise.
type Immediate interface {
	Immediate() bool
}
