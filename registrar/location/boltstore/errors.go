package boltstore

import "errors"

var (
	// ErrLocked is returned by Open when another Store, in this process or
	// another, holds the file.
	ErrLocked = errors.New("boltstore: file locked by another store")
	// ErrInvalidOption is returned by Open for an option out of range.
	ErrInvalidOption = errors.New("boltstore: invalid option")
	// ErrInvalidAOR is returned by Update for an AOR bbolt cannot use as a
	// key: an empty one, or one over bbolt.MaxKeySize bytes.
	ErrInvalidAOR = errors.New("boltstore: invalid AOR")
)
