package sdp

import (
	"fmt"
	"strconv"
	"strings"
)

// Codec is an RTP payload format of an audio stream.
type Codec struct {
	Name     string // encoding name, "PCMU"
	Rate     int    // clock rate in Hz
	Channels int    // 1 when the rtpmap gives none
	PT       uint8  // payload type
	Fmtp     string // format parameters, if any
}

// The codecs this package knows by heart.
var (
	PCMU           = Codec{Name: "PCMU", Rate: 8000, Channels: 1, PT: 0}
	PCMA           = Codec{Name: "PCMA", Rate: 8000, Channels: 1, PT: 8}
	TelephoneEvent = Codec{Name: "telephone-event", Rate: 8000, Channels: 1, PT: 101, Fmtp: "0-16"}
)

// static are the payload types usable without an rtpmap (RFC 3551 §6).
var static = map[uint8]Codec{
	0:  PCMU,
	3:  {Name: "GSM", Rate: 8000, Channels: 1, PT: 3},
	4:  {Name: "G723", Rate: 8000, Channels: 1, PT: 4},
	8:  PCMA,
	9:  {Name: "G722", Rate: 8000, Channels: 1, PT: 9},
	18: {Name: "G729", Rate: 8000, Channels: 1, PT: 18},
}

func (c Codec) String() string {
	s := fmt.Sprintf("%d %s/%d", c.PT, c.Name, c.Rate)
	if c.Channels > 1 {
		s += "/" + strconv.Itoa(c.Channels)
	}
	return s
}

// Matches reports whether c and o are the same format: same name (any
// case), clock rate and channels, whatever their payload types.
func (c Codec) Matches(o Codec) bool {
	return strings.EqualFold(c.Name, o.Name) && c.Rate == o.Rate && max(c.Channels, 1) == max(o.Channels, 1)
}

// IsDTMF reports whether c is RFC 4733 telephone-event.
func (c Codec) IsDTMF() bool { return strings.EqualFold(c.Name, "telephone-event") }

func (c Codec) rtpmap() string {
	s := fmt.Sprintf("%d %s/%d", c.PT, c.Name, c.Rate)
	if c.Channels > 1 {
		s += "/" + strconv.Itoa(c.Channels)
	}
	return s
}

// parseRtpmap parses "96 opus/48000/2".
func parseRtpmap(v string) (Codec, error) {
	pt, enc, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return Codec{}, fmt.Errorf("%w: rtpmap %q", ErrInvalid, v)
	}
	n, err := strconv.ParseUint(pt, 10, 7)
	if err != nil {
		return Codec{}, fmt.Errorf("%w: rtpmap payload type %q", ErrInvalid, pt)
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	if len(parts) < 2 {
		return Codec{}, fmt.Errorf("%w: rtpmap %q", ErrInvalid, v)
	}
	rate, err := strconv.Atoi(parts[1])
	if err != nil || rate <= 0 {
		return Codec{}, fmt.Errorf("%w: rtpmap clock rate %q", ErrInvalid, parts[1])
	}
	c := Codec{Name: parts[0], Rate: rate, Channels: 1, PT: uint8(n)}
	if len(parts) > 2 {
		if c.Channels, err = strconv.Atoi(parts[2]); err != nil || c.Channels < 1 {
			return Codec{}, fmt.Errorf("%w: rtpmap channels %q", ErrInvalid, parts[2])
		}
	}
	return c, nil
}

func codecNames(cs []Codec) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.String()
	}
	return "[" + strings.Join(names, ", ") + "]"
}
