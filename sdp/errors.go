package sdp

import "errors"

var (
	// ErrInvalid reports SDP that cannot be parsed or lacks what offer/answer needs.
	ErrInvalid = errors.New("sdp: invalid description")
	// ErrNoCodec reports that no audio codec is common to both sides; a SIP
	// UA answers 488 Not Acceptable Here.
	ErrNoCodec = errors.New("sdp: no common codec")
	// ErrNoAudio reports a description with no usable audio stream.
	ErrNoAudio = errors.New("sdp: no audio stream")
)
