package media

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// ErrConfig reports session parameters that cannot work.
var ErrConfig = errors.New("media: invalid session config")

// Config is what a call negotiated, and where the audio comes from and
// goes to.
type Config struct {
	// Conn is the bound RTP socket. The session owns it and closes it.
	Conn net.PacketConn
	// Remote is where to send RTP until the peer's packets show where it
	// really is (symmetric RTP, RFC 4961).
	Remote netip.AddrPort
	Codec  Codec
	PT     uint8
	// DTMFPT is the telephone-event payload type (RFC 4733); 0 for none.
	DTMFPT uint8
	// Ptime is the packet duration; 20 ms when zero.
	Ptime time.Duration
	// Send and Recv are the negotiated direction.
	Send, Recv bool
	// Source is what we send (silence when nil); Sink gets what we hear,
	// one frame per Ptime, silence included (nil discards).
	Source Source
	Sink   Sink
	// OnDTMF is called, from the receiving goroutine, once per digit.
	OnDTMF func(digit byte)
	// RTCP is the bound RTCP socket, usually the RTP port plus one; the
	// session owns it. nil turns RTCP off. RemoteRTCP is the peer's, and
	// RTCPInterval the report interval (5 s when zero).
	RTCP         net.PacketConn
	RemoteRTCP   netip.AddrPort
	RTCPInterval time.Duration
}

// Stats are a session's counters.
type Stats struct {
	Codec           string
	PacketsSent     uint64
	PacketsReceived uint64
	// Lost is the packets expected but never received; LossPercent of the expected.
	Lost        uint64
	LossPercent float64
	// Jitter is the interarrival jitter of what we receive, in ms.
	Jitter float64
	// Late, Duplicates and Concealed count the jitter buffer's work.
	Late, Duplicates, Concealed uint64
	// RTT is the round-trip time from RTCP, 0 until known.
	RTT time.Duration
	// RemoteAddr is where we send now.
	RemoteAddr netip.AddrPort
}

// Session streams one call's audio: it sends a frame every Ptime and plays
// out what arrives through a jitter buffer. Its hot path allocates nothing
// and logs nothing.
type Session struct {
	conn    net.PacketConn
	codec   Codec
	pt      uint8
	dtmfPT  uint8
	ptime   time.Duration
	samples int
	source  Source
	sink    Sink
	onDTMF  func(byte)
	ssrc    uint32

	mu         sync.Mutex
	remote     netip.AddrPort
	send, recv bool
	jb         *JitterBuffer
	peerSSRC   uint32
	havePeer   bool
	firstSeq   uint64
	sent, rcvd uint64
	dtmfQueue  []byte
	lastEvent  uint32 // timestamp of the last DTMF event reported
	haveEvent  bool

	// RTCP state.
	rtcpConn               net.PacketConn
	remoteRTCP             netip.AddrPort
	lastSR                 uint32 // middle 32 bits of the peer's last SR
	lastSRAt               time.Time
	rtt                    time.Duration
	ts                     uint32 // RTP timestamp of the last packet sent
	octets                 uint64
	prevExpected, prevRcvd uint64

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Start begins streaming.
func Start(c Config) (*Session, error) {
	if c.Conn == nil || c.Codec == nil {
		return nil, fmt.Errorf("%w: a socket and a codec are needed", ErrConfig)
	}
	if c.Ptime == 0 {
		c.Ptime = 20 * time.Millisecond
	}
	samples := int(c.Ptime.Seconds() * float64(c.Codec.Rate()))
	if samples <= 0 || samples > 1920 {
		return nil, fmt.Errorf("%w: ptime %s", ErrConfig, c.Ptime)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &Session{
		conn: c.Conn, codec: c.Codec, pt: c.PT, dtmfPT: c.DTMFPT, ptime: c.Ptime, samples: samples,
		source: c.Source, sink: c.Sink, onDTMF: c.OnDTMF, ssrc: binary.BigEndian.Uint32(b[:]),
		remote: c.Remote, send: c.Send, recv: c.Recv,
		jb:       NewJitterBuffer(c.Codec.Rate(), uint32(samples), 2, 15),
		stop:     make(chan struct{}),
		rtcpConn: c.RTCP, remoteRTCP: c.RemoteRTCP,
	}
	if !s.remoteRTCP.IsValid() && c.Remote.IsValid() {
		s.remoteRTCP = netip.AddrPortFrom(c.Remote.Addr(), c.Remote.Port()+1)
	}
	s.wg.Add(2)
	go s.readLoop()
	go s.tickLoop()
	if s.rtcpConn != nil {
		if c.RTCPInterval <= 0 {
			c.RTCPInterval = 5 * time.Second
		}
		s.wg.Add(2)
		go s.rtcpReadLoop()
		go s.rtcpSendLoop(c.RTCPInterval)
	}
	return s, nil
}

// Update applies a new negotiation (re-INVITE): a new address, or hold.
func (s *Session) Update(remote netip.AddrPort, send, recv bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if remote.IsValid() && remote != s.remote {
		s.remote, s.havePeer = remote, false
		s.remoteRTCP = netip.AddrPortFrom(remote.Addr(), remote.Port()+1)
	}
	s.send, s.recv = send, recv
}

// SendDTMF queues digits (0-9, *, #, A-D) to send as RFC 4733 events.
func (s *Session) SendDTMF(digits string) error {
	if s.dtmfPT == 0 {
		return fmt.Errorf("%w: the peer did not accept telephone-event", ErrConfig)
	}
	for i := 0; i < len(digits); i++ {
		if _, ok := dtmfEvent(digits[i]); !ok {
			return fmt.Errorf("%w: DTMF digit %q", ErrConfig, digits[i])
		}
	}
	s.mu.Lock()
	s.dtmfQueue = append(s.dtmfQueue, digits...)
	s.mu.Unlock()
	return nil
}

// Stats returns the counters so far.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	js := s.jb.Stats()
	st := Stats{
		Codec: s.codec.Name(), PacketsSent: s.sent, PacketsReceived: s.rcvd,
		Jitter: js.Jitter, Late: js.Late, Duplicates: js.Duplicates, Concealed: js.Missing,
		RTT: s.rtt, RemoteAddr: s.remote,
	}
	if s.havePeer && s.jb.started {
		expected := s.jb.highest - s.firstSeq + 1
		if expected > s.rcvd {
			st.Lost = expected - s.rcvd
		}
		st.LossPercent = 100 * float64(st.Lost) / float64(expected)
	}
	return st
}

// Close stops the session and closes its socket. It is idempotent.
func (s *Session) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		err = s.conn.Close()
		if s.rtcpConn != nil {
			err = errors.Join(err, s.rtcpConn.Close())
		}
		s.wg.Wait()
	})
	return err
}

func (s *Session) readLoop() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		// RTP is version 2; STUN and anything else on the port is not.
		if n < 12 || buf[0]>>6 != 2 {
			continue
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		src, _ := from.(*net.UDPAddr)
		s.receive(&pkt, src, time.Now())
	}
}

func (s *Session) receive(pkt *rtp.Packet, from *net.UDPAddr, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pkt.PayloadType != s.pt && (s.dtmfPT == 0 || pkt.PayloadType != s.dtmfPT) {
		return
	}
	if from != nil {
		// Symmetric RTP: send where the peer's RTP really comes from.
		if ap := from.AddrPort(); ap.IsValid() {
			s.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	if !s.havePeer || pkt.SSRC != s.peerSSRC {
		// A new stream, or a new SSRC: start over.
		s.jb.Reset()
		s.peerSSRC, s.havePeer, s.rcvd = pkt.SSRC, true, 0
		s.firstSeq = s.jb.extend(pkt.SequenceNumber)
	}
	s.rcvd++
	payload := pkt.Payload
	if pkt.PayloadType == s.dtmfPT && s.dtmfPT != 0 {
		s.receiveDTMFLocked(pkt)
		// Keep its place in the sequence as a silent frame, so playout
		// does not take the gap for loss and stall behind it.
		payload = nil
	}
	if s.recv {
		s.jb.Push(pkt.SequenceNumber, pkt.Timestamp, payload, now)
	}
}

// receiveDTMFLocked reports an RFC 4733 event once, at its first packet.
func (s *Session) receiveDTMFLocked(pkt *rtp.Packet) {
	if len(pkt.Payload) < 4 || (s.haveEvent && pkt.Timestamp == s.lastEvent) {
		return
	}
	s.lastEvent, s.haveEvent = pkt.Timestamp, true
	if d, ok := dtmfDigit(pkt.Payload[0]); ok && s.onDTMF != nil {
		s.onDTMF(d)
	}
}

func (s *Session) tickLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.ptime)
	defer t.Stop()
	pcm := make([]int16, s.samples)
	last := make([]int16, s.samples)
	out := make([]byte, 12+s.samples*2)
	payload := make([]byte, s.samples*2)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: s.ssrc}}
	var b [4]byte
	_, _ = rand.Read(b[:])
	seq, ts := binary.BigEndian.Uint16(b[:2]), binary.BigEndian.Uint32(b[:])
	misses := 0
	var dtmf dtmfSender
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		send, recv, remote := s.send, s.recv, s.remote
		if !dtmf.active() && len(s.dtmfQueue) > 0 {
			dtmf.start(s.dtmfQueue[0], ts)
			s.dtmfQueue = s.dtmfQueue[1:]
		}
		var got []byte
		var st PopStatus
		if recv {
			got, st = s.jb.Pop()
			if st == Ready && len(got) == 0 {
				st = Waiting // a DTMF event's place: silence
			} else if st == Ready {
				s.codec.DecodeTo(pcm, got)
			}
		}
		s.mu.Unlock()

		if recv {
			switch st {
			case Ready:
				copy(last, pcm)
				misses = 0
			case Missing:
				misses++
				Conceal(pcm, last, misses)
			default:
				clear(pcm)
			}
		} else {
			clear(pcm)
		}
		if s.sink != nil {
			_ = s.sink.WriteFrame(pcm)
		}

		if s.source != nil {
			if err := s.source.ReadFrame(pcm); err != nil {
				clear(pcm)
			}
		} else {
			clear(pcm)
		}
		if !send || !remote.IsValid() {
			ts += uint32(s.samples)
			continue
		}
		pkt.SequenceNumber, pkt.Marker = seq, false
		if dtmf.active() {
			pkt.PayloadType, pkt.Timestamp = s.dtmfPT, dtmf.ts
			pkt.Marker = dtmf.sent == 0 // the event's first packet
			pkt.Payload = dtmf.next(payload, uint16(s.samples))
		} else {
			pkt.PayloadType, pkt.Timestamp = s.pt, ts
			pkt.Payload = payload[:s.codec.EncodeTo(payload, pcm)]
		}
		n, err := pkt.MarshalTo(out)
		if err == nil {
			if _, err := s.conn.WriteTo(out[:n], net.UDPAddrFromAddrPort(remote)); err == nil {
				s.mu.Lock()
				s.sent++
				s.octets += uint64(len(pkt.Payload))
				s.ts = pkt.Timestamp
				s.mu.Unlock()
			}
		}
		seq++
		ts += uint32(s.samples)
	}
}

// dtmfSender paces one RFC 4733 event: 100 ms of tone, then the end
// packet three times (RFC 4733 §2.5.1.4).
type dtmfSender struct {
	event    byte
	ts       uint32
	duration uint16
	sent     int
	on       bool
}

const dtmfPackets, dtmfEnds = 5, 3

func (d *dtmfSender) active() bool { return d.on }

func (d *dtmfSender) start(digit byte, ts uint32) {
	ev, _ := dtmfEvent(digit)
	*d = dtmfSender{event: ev, ts: ts, on: true}
}

func (d *dtmfSender) next(buf []byte, step uint16) []byte {
	d.sent++
	end := d.sent > dtmfPackets
	if !end {
		d.duration += step
	}
	buf[0] = d.event
	buf[1] = 10 // volume: -10 dBm0
	if end {
		buf[1] |= 0x80
	}
	binary.BigEndian.PutUint16(buf[2:], d.duration)
	if d.sent >= dtmfPackets+dtmfEnds {
		d.on = false
	}
	return buf[:4]
}

const dtmfDigits = "0123456789*#ABCD"

func dtmfEvent(d byte) (byte, bool) {
	for i := 0; i < len(dtmfDigits); i++ {
		if dtmfDigits[i] == d || (d >= 'a' && d <= 'd' && dtmfDigits[i] == d-32) {
			return byte(i), true
		}
	}
	return 0, false
}

func dtmfDigit(ev byte) (byte, bool) {
	if int(ev) < len(dtmfDigits) {
		return dtmfDigits[ev], true
	}
	return 0, false
}
