package sdp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// Local is what this side has and wants.
type Local struct {
	// Addr and Port receive RTP; RTCP is on Port+1.
	Addr netip.Addr
	Port int
	// Codecs are the audio codecs in order of preference, with their
	// payload types for our offers; add TelephoneEvent to do RFC 4733.
	Codecs []Codec
	// Ptime is the packet time in ms; 20 when zero.
	Ptime int
	// Direction is what we want; SendRecv when zero. SendOnly puts the
	// peer on hold.
	Direction Direction
	// Origin fields (RFC 4566 §5.2): the session ID stays, the version
	// grows with each new description.
	Username  string
	SessionID uint64
	Version   uint64
}

// Result is the outcome of an offer/answer exchange for the audio stream.
type Result struct {
	// Remote is where to send RTP; RTCP goes to RemoteRTCP.
	Remote     netip.AddrPort
	RemoteRTCP netip.AddrPort
	// Codec is the audio codec, with the payload type both sides use.
	Codec Codec
	// DTMF is telephone-event with its payload type, or the zero Codec.
	DTMF Codec
	// Ptime is the packet time in ms to send with.
	Ptime int
	// Direction is ours: whether we send and receive.
	Direction Direction
}

// stream is an audio m= line as parsed.
type stream struct {
	index     int
	port      int
	addr      netip.Addr
	rtcpPort  int
	codecs    []Codec // in the m= line's order
	ptime     int
	direction Direction
}

// Offer renders an offer.
func Offer(l Local) ([]byte, error) {
	return render(l, l.Codecs, directionOf(l), nil, -1)
}

// Answer answers offer (RFC 3264 §6): it takes the first audio stream that
// shares a codec with l, picks the offerer's most preferred codec that l
// supports, and answers telephone-event on the offerer's payload type. Other
// streams are rejected with port 0. ErrNoCodec means 488.
func Answer(offer []byte, l Local) ([]byte, Result, error) {
	sd, err := parse(offer)
	if err != nil {
		return nil, Result{}, err
	}
	streams, err := audioStreams(sd)
	if err != nil {
		return nil, Result{}, err
	}
	var lastErr error = fmt.Errorf("%w: offer %s", ErrNoAudio, summary(sd))
	for _, s := range streams {
		if s.port == 0 {
			continue
		}
		codec, dtmf, ok := choose(s.codecs, l.Codecs)
		if !ok {
			lastErr = fmt.Errorf("%w: offered %s, we have %s", ErrNoCodec, codecNames(s.codecs), codecNames(l.Codecs))
			continue
		}
		res := result(s, codec, dtmf, l)
		res.Direction = answerDirection(s.direction, directionOf(l))
		chosen := []Codec{codec}
		if dtmf.Name != "" {
			chosen = append(chosen, dtmf)
		}
		out, err := render(l, chosen, res.Direction, sd, s.index)
		if err != nil {
			return nil, Result{}, err
		}
		return out, res, nil
	}
	return nil, Result{}, lastErr
}

// Negotiated reads the answer to an offer made from l (RFC 3264 §7).
func Negotiated(answer []byte, l Local) (Result, error) {
	sd, err := parse(answer)
	if err != nil {
		return Result{}, err
	}
	streams, err := audioStreams(sd)
	if err != nil {
		return Result{}, err
	}
	for _, s := range streams {
		if s.port == 0 {
			continue
		}
		codec, dtmf, ok := choose(s.codecs, l.Codecs)
		if !ok {
			return Result{}, fmt.Errorf("%w: answered %s, we offered %s", ErrNoCodec, codecNames(s.codecs), codecNames(l.Codecs))
		}
		res := result(s, codec, dtmf, l)
		res.Direction = answerDirection(s.direction, directionOf(l))
		return res, nil
	}
	return Result{}, fmt.Errorf("%w: the answer rejected every audio stream", ErrNoAudio)
}

func directionOf(l Local) Direction {
	if l.Direction == 0 {
		return SendRecv
	}
	return l.Direction
}

// choose returns the first of theirs that we support, with their payload
// type, and their telephone-event at 8 kHz if we do DTMF.
func choose(theirs, ours []Codec) (codec, dtmf Codec, ok bool) {
	wantDTMF := false
	for _, c := range ours {
		wantDTMF = wantDTMF || c.IsDTMF()
	}
	for _, t := range theirs {
		if t.IsDTMF() {
			if wantDTMF && dtmf.Name == "" && t.Rate == 8000 {
				dtmf = t
			}
			continue
		}
		if ok {
			continue
		}
		for _, o := range ours {
			if !o.IsDTMF() && o.Matches(t) {
				codec, ok = t, true
				break
			}
		}
	}
	return codec, dtmf, ok
}

func result(s stream, codec, dtmf Codec, l Local) Result {
	ptime := s.ptime
	if ptime == 0 {
		ptime = l.Ptime
	}
	if ptime == 0 {
		ptime = 20
	}
	return Result{
		Remote:     netip.AddrPortFrom(s.addr, uint16(s.port)),
		RemoteRTCP: netip.AddrPortFrom(s.addr, uint16(s.rtcpPort)),
		Codec:      codec,
		DTMF:       dtmf,
		Ptime:      ptime,
	}
}

func parse(b []byte) (*psdp.SessionDescription, error) {
	var sd psdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &sd, nil
}

// audioStreams reads the audio m= lines, with c= from the media or the
// session level.
func audioStreams(sd *psdp.SessionDescription) ([]stream, error) {
	var out []stream
	for i, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		s := stream{index: i, port: md.MediaName.Port.Value, direction: SendRecv}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		if s.port != 0 {
			if ci == nil || ci.Address == nil {
				return nil, fmt.Errorf("%w: audio stream %d has no c= line", ErrInvalid, i)
			}
			a, err := netip.ParseAddr(strings.Split(ci.Address.Address, "/")[0])
			if err != nil {
				return nil, fmt.Errorf("%w: connection address %q", ErrInvalid, ci.Address.Address)
			}
			s.addr = a
		}
		s.rtcpPort = s.port + 1
		maps := map[uint8]Codec{}
		fmtps := map[uint8]string{}
		for _, a := range append(slicesClone(sd.Attributes), md.Attributes...) {
			switch a.Key {
			case "rtpmap":
				if c, err := parseRtpmap(a.Value); err == nil {
					maps[c.PT] = c
				}
			case "fmtp":
				if pt, v, ok := strings.Cut(a.Value, " "); ok {
					if n, err := strconv.ParseUint(pt, 10, 7); err == nil {
						fmtps[uint8(n)] = v
					}
				}
			case "ptime":
				s.ptime, _ = strconv.Atoi(strings.TrimSpace(a.Value))
			case "rtcp":
				if p, err := strconv.Atoi(strings.Fields(a.Value + " ")[0]); err == nil {
					s.rtcpPort = p
				}
			case "sendrecv", "sendonly", "recvonly", "inactive":
				s.direction, _ = ParseDirection(a.Key)
			}
		}
		for _, f := range md.MediaName.Formats {
			n, err := strconv.ParseUint(f, 10, 7)
			if err != nil {
				continue
			}
			pt := uint8(n)
			c, ok := maps[pt]
			if !ok {
				if c, ok = static[pt]; !ok {
					continue
				}
			}
			c.Fmtp = fmtps[pt]
			s.codecs = append(s.codecs, c)
		}
		if s.addr.IsUnspecified() && s.port != 0 {
			// c=0.0.0.0 is the old way to hold (RFC 3264 §8.4): the peer
			// receives nothing.
			s.direction = withoutReceive(s.direction)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoAudio, summary(sd))
	}
	return out, nil
}

// withoutReceive removes receiving from the peer's direction d.
func withoutReceive(d Direction) Direction {
	switch d {
	case SendRecv, SendOnly:
		return SendOnly
	}
	return Inactive
}

func slicesClone(a []psdp.Attribute) []psdp.Attribute { return append([]psdp.Attribute(nil), a...) }

// render writes a description with one audio stream of codecs, in the
// place of stream index of offer (answers), rejecting offer's other
// streams with port 0.
func render(l Local, codecs []Codec, dir Direction, offer *psdp.SessionDescription, index int) ([]byte, error) {
	if !l.Addr.IsValid() || l.Port <= 0 || l.Port > 65535 {
		return nil, fmt.Errorf("%w: local address %v port %d", ErrInvalid, l.Addr, l.Port)
	}
	if len(codecs) == 0 {
		return nil, fmt.Errorf("%w: no codecs", ErrNoCodec)
	}
	addrType := "IP4"
	if l.Addr.Is6() && !l.Addr.Is4In6() {
		addrType = "IP6"
	}
	user := l.Username
	if user == "" {
		user = "-"
	}
	ptime := l.Ptime
	if ptime == 0 {
		ptime = 20
	}
	sd := &psdp.SessionDescription{
		Origin: psdp.Origin{Username: user, SessionID: l.SessionID, SessionVersion: l.Version,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: l.Addr.String()},
		SessionName:           "sipline",
		ConnectionInformation: &psdp.ConnectionInformation{NetworkType: "IN", AddressType: addrType, Address: &psdp.Address{Address: l.Addr.String()}},
		TimeDescriptions:      []psdp.TimeDescription{{}},
	}
	audio := &psdp.MediaDescription{MediaName: psdp.MediaName{Media: "audio", Port: psdp.RangedPort{Value: l.Port}, Protos: []string{"RTP", "AVP"}}}
	for _, c := range codecs {
		audio.MediaName.Formats = append(audio.MediaName.Formats, strconv.Itoa(int(c.PT)))
	}
	for _, c := range codecs {
		audio.Attributes = append(audio.Attributes, psdp.NewAttribute("rtpmap", c.rtpmap()))
		if c.Fmtp != "" {
			audio.Attributes = append(audio.Attributes, psdp.NewAttribute("fmtp", strconv.Itoa(int(c.PT))+" "+c.Fmtp))
		}
	}
	audio.Attributes = append(audio.Attributes, psdp.NewAttribute("ptime", strconv.Itoa(ptime)), psdp.NewPropertyAttribute(dir.String()))
	if offer == nil {
		sd.MediaDescriptions = []*psdp.MediaDescription{audio}
		return sd.Marshal()
	}
	for i, md := range offer.MediaDescriptions {
		if i == index {
			sd.MediaDescriptions = append(sd.MediaDescriptions, audio)
			continue
		}
		rejected := &psdp.MediaDescription{MediaName: md.MediaName}
		rejected.MediaName.Port = psdp.RangedPort{Value: 0}
		sd.MediaDescriptions = append(sd.MediaDescriptions, rejected)
	}
	return sd.Marshal()
}

func summary(sd *psdp.SessionDescription) string {
	var ms []string
	for _, md := range sd.MediaDescriptions {
		ms = append(ms, md.MediaName.String())
	}
	return "[" + strings.Join(ms, "; ") + "]"
}
