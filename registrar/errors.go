package registrar

import (
	"errors"
	"fmt"
)

var (
	// ErrConfig reports an option that cannot work.
	ErrConfig = errors.New("registrar: invalid configuration")
	// ErrNoRoute reports a target that cannot be reached.
	ErrNoRoute = errors.New("registrar: no route to target")
)

// StatusError is a SIP failure to report to the requester as a final
// response. It keeps the cause for logs.
type StatusError struct {
	Code   int
	Reason string
	// Header fields to add to the response, such as Min-Expires.
	Headers [][2]string
	Err     error
}

func (e *StatusError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("registrar: %d %s: %v", e.Code, e.Reason, e.Err)
	}
	return fmt.Sprintf("registrar: %d %s", e.Code, e.Reason)
}

func (e *StatusError) Unwrap() error { return e.Err }

func statusErr(code int, reason string, err error, headers ...[2]string) *StatusError {
	return &StatusError{Code: code, Reason: reason, Err: err, Headers: headers}
}
