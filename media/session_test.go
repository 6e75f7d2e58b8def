package media_test

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/sipline/sipline/media"
	"github.com/sipline/sipline/media/mediatest"
)

// memSink keeps what it is given.
type memSink struct {
	mu  sync.Mutex
	pcm []int16
}

func (m *memSink) WriteFrame(p []int16) error {
	m.mu.Lock()
	m.pcm = append(m.pcm, p...)
	m.mu.Unlock()
	return nil
}
func (m *memSink) Close() error { return nil }
func (m *memSink) samples() []int16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int16(nil), m.pcm...)
}

func listen(t *testing.T) (net.PacketConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestTwoSessionsExchangeTonesAndDTMF(t *testing.T) {
	ca, aa := listen(t)
	cb, ab := listen(t)
	var digits []byte
	var mu sync.Mutex
	sinkA, sinkB := &memSink{}, &memSink{}
	a, err := media.Start(media.Config{Conn: ca, Remote: ab, Codec: media.PCMU{}, PT: 0, DTMFPT: 101, Send: true, Recv: true,
		Source: media.NewPCMSource(mediatest.Tone(1000, 8000, 200*time.Millisecond, time.Second, 0.5), false), Sink: sinkA})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// b is told a wrong address for a; it must latch onto where a's RTP comes from.
	wrong := netip.MustParseAddrPort("127.0.0.1:9")
	b, err := media.Start(media.Config{Conn: cb, Remote: wrong, Codec: media.PCMU{}, PT: 0, DTMFPT: 101, Send: true, Recv: true,
		Source: media.NewPCMSource(mediatest.Tone(440, 8000, 200*time.Millisecond, time.Second, 0.5), false), Sink: sinkB,
		OnDTMF: func(d byte) { mu.Lock(); digits = append(digits, d); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Linphone sends STUN to the RTP port; it must be ignored.
	stun := make([]byte, 20)
	stun[1], stun[4], stun[5], stun[6], stun[7] = 1, 0x21, 0x12, 0xA4, 0x42
	if _, err := ca.WriteTo(stun, net.UDPAddrFromAddrPort(ab)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1400 * time.Millisecond)
	if err := a.SendDTMF("1#9"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(800 * time.Millisecond)

	if got := b.Stats().RemoteAddr; got != aa {
		t.Errorf("b sends to %v, want %v (latched)", got, aa)
	}
	for _, tc := range []struct {
		name      string
		pcm       []int16
		want, not float64
	}{
		{"a hears b's 440 Hz", sinkA.samples(), 440, 1000},
		{"b hears a's 1000 Hz", sinkB.samples(), 1000, 440},
	} {
		start, end, ok := mediatest.Span(tc.pcm, tc.want, 8000, 0.02)
		if !ok {
			t.Errorf("%s: no tone", tc.name)
			continue
		}
		if d := end - start; d < 950*time.Millisecond || d > 1050*time.Millisecond {
			t.Errorf("%s: tone lasts %v, want 1 s ±5%%", tc.name, d)
		}
		if _, _, heard := mediatest.Span(tc.pcm, tc.not, 8000, 0.02); heard {
			t.Errorf("%s: the other tone (%v Hz) is there too", tc.name, tc.not)
		}
	}
	mu.Lock()
	if string(digits) != "1#9" {
		t.Errorf("b got DTMF %q, want %q", digits, "1#9")
	}
	mu.Unlock()
	st := b.Stats()
	if st.PacketsReceived < 50 || st.Lost != 0 || st.Codec != "PCMU" {
		t.Errorf("b stats %+v", st)
	}
}

func TestHoldStopsSending(t *testing.T) {
	ca, _ := listen(t)
	cb, ab := listen(t)
	sinkB := &memSink{}
	a, err := media.Start(media.Config{Conn: ca, Remote: ab, Codec: media.PCMA{}, PT: 8, Send: true, Recv: true,
		Source: media.NewPCMSource(mediatest.Tone(1000, 8000, 0, time.Second, 0.5), true)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := media.Start(media.Config{Conn: cb, Codec: media.PCMA{}, PT: 8, Recv: true, Sink: sinkB})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	time.Sleep(500 * time.Millisecond)
	a.Update(netip.AddrPort{}, false, true) // hold: a stops sending
	time.Sleep(100 * time.Millisecond)
	held := len(sinkB.samples())
	time.Sleep(500 * time.Millisecond)
	pcm := sinkB.samples()
	if p := mediatest.Power(pcm[held+800:], 1000, 8000); p > 0.001 {
		t.Fatalf("the tone goes on during hold (power %.3f)", p)
	}
	if p := mediatest.Power(pcm[:held], 1000, 8000); p < 0.02 {
		t.Fatalf("no tone before hold (power %.3f)", p)
	}
}

func TestRTCPMeasuresRoundTrip(t *testing.T) {
	ca, aa := listen(t)
	cb, ab := listen(t)
	ra, rra := listen(t)
	rb, rrb := listen(t)
	a, err := media.Start(media.Config{Conn: ca, Remote: ab, RTCP: ra, RemoteRTCP: rrb, RTCPInterval: 100 * time.Millisecond,
		Codec: media.PCMU{}, PT: 0, Send: true, Recv: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := media.Start(media.Config{Conn: cb, Remote: aa, RTCP: rb, RemoteRTCP: rra, RTCPInterval: 100 * time.Millisecond,
		Codec: media.PCMU{}, PT: 0, Send: true, Recv: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	deadline := time.Now().Add(3 * time.Second)
	for a.Stats().RTT == 0 || b.Stats().RTT == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no RTT after 3 s: a %v, b %v", a.Stats().RTT, b.Stats().RTT)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range []*media.Session{a, b} {
		if rtt := s.Stats().RTT; rtt > 50*time.Millisecond {
			t.Errorf("loopback RTT %v", rtt)
		}
	}
}

// The receive path of a packet, from the wire bytes to decoded samples:
// RTP parse, jitter buffer, decode. It allocates nothing per packet.
func BenchmarkReceivePath(b *testing.B) {
	jb := media.NewJitterBuffer(8000, 160, 2, 15)
	var pkt rtp.Packet
	raw, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 1}, Payload: make([]byte, 160)}).Marshal()
	pcm := make([]int16, 160)
	t0 := time.Unix(0, 0)
	var seq uint16
	b.ReportAllocs()
	for b.Loop() {
		raw[2], raw[3] = byte(seq>>8), byte(seq)
		if err := pkt.Unmarshal(raw); err != nil {
			b.Fatal(err)
		}
		jb.Push(pkt.SequenceNumber, uint32(seq)*160, pkt.Payload, t0.Add(time.Duration(seq)*20*time.Millisecond))
		if p, st := jb.Pop(); st == media.Ready {
			media.PCMU{}.DecodeTo(pcm, p)
		}
		seq++
	}
}

// The send path: encode a frame and marshal its packet.
func BenchmarkSendPath(b *testing.B) {
	pcm := mediatest.Tone(1000, 8000, 0, 20*time.Millisecond, 0.5)
	payload := make([]byte, 160)
	out := make([]byte, 12+160)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}}
	b.ReportAllocs()
	for b.Loop() {
		pkt.SequenceNumber++
		pkt.Payload = payload[:media.PCMU{}.EncodeTo(payload, pcm)]
		if _, err := pkt.MarshalTo(out); err != nil {
			b.Fatal(err)
		}
	}
}
