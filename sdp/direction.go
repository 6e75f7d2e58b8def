package sdp

import "fmt"

// Direction is a media stream's direction attribute (RFC 3264 §5.1), from
// the point of view of the side that writes it.
type Direction int

// Directions.
const (
	SendRecv Direction = iota + 1
	SendOnly
	RecvOnly
	Inactive
)

func (d Direction) String() string {
	switch d {
	case SendRecv:
		return "sendrecv"
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// ParseDirection parses a direction attribute name.
func ParseDirection(s string) (Direction, error) {
	for _, d := range []Direction{SendRecv, SendOnly, RecvOnly, Inactive} {
		if d.String() == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%w: direction %q", ErrInvalid, s)
}

// Sends reports whether the side with this direction sends media.
func (d Direction) Sends() bool { return d == SendRecv || d == SendOnly }

// Receives reports whether the side with this direction receives media.
func (d Direction) Receives() bool { return d == SendRecv || d == RecvOnly }

// Reverse is the direction as the other side sees it.
func (d Direction) Reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	}
	return d
}

// answer is the direction an answerer willing to do want replies to an
// offer of d with (RFC 3264 §6.1).
func answerDirection(offer, want Direction) Direction {
	sends := want.Sends() && offer.Receives()
	recvs := want.Receives() && offer.Sends()
	switch {
	case sends && recvs:
		return SendRecv
	case sends:
		return SendOnly
	case recvs:
		return RecvOnly
	}
	return Inactive
}
