package media

import (
	"errors"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtcp"
)

// RTCP (RFC 3550 §6): a sender report while we send, a receiver report
// otherwise, each with a report block on the peer's stream; from the
// peer's blocks on ours comes the round-trip time (§6.4.1). It runs every
// few seconds, not per packet.

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // 1900 to 1970, in seconds
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// middle32 is the middle 32 bits of an NTP timestamp, in 1/65536 s.
func middle32(ntp uint64) uint32 { return uint32(ntp >> 16) }

func (s *Session) rtcpReadLoop() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.rtcpConn.ReadFrom(buf)
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
		// RTCP is RTP version 2 with a packet type of 200 to 206 or so.
		if n < 8 || buf[0]>>6 != 2 {
			continue
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		s.receiveRTCP(pkts, from, time.Now())
	}
}

func (s *Session) receiveRTCP(pkts []rtcp.Packet, from net.Addr, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ua, ok := from.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		s.remoteRTCP = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	var blocks []rtcp.ReceptionReport
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			s.lastSR, s.lastSRAt = middle32(p.NTPTime), now
			blocks = append(blocks, p.Reports...)
		case *rtcp.ReceiverReport:
			blocks = append(blocks, p.Reports...)
		}
	}
	for _, b := range blocks {
		if b.SSRC != s.ssrc || b.LastSenderReport == 0 {
			continue
		}
		rtt := int64(middle32(ntpTime(now))) - int64(b.LastSenderReport) - int64(b.Delay)
		if rtt >= 0 {
			// Below the 1/65536 s resolution it is still known.
			s.rtt = max(time.Duration(rtt)*time.Second/65536, time.Second/65536)
		}
	}
}

// rtcpSendLoop reports at interval, randomised by ±50% as RFC 3550 §6.3.1
// asks; the first report goes out after a fifth of it, so that even a
// short call learns its round-trip time.
func (s *Session) rtcpSendLoop(interval time.Duration) {
	defer s.wg.Done()
	jitter := func(d time.Duration) time.Duration { return d/2 + time.Duration(mrand.Int64N(int64(d))) }
	t := time.NewTimer(jitter(interval / 5))
	defer t.Stop()
	buf := make([]byte, 0, 256)
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			t.Reset(jitter(interval))
		}
		pkt, to := s.report(time.Now())
		if !to.IsValid() {
			continue
		}
		b, err := rtcp.Marshal([]rtcp.Packet{pkt})
		if err != nil {
			continue
		}
		buf = append(buf[:0], b...)
		_, _ = s.rtcpConn.WriteTo(buf, net.UDPAddrFromAddrPort(to))
	}
}

// report builds our SR or RR.
func (s *Session) report(now time.Time) (rtcp.Packet, netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var blocks []rtcp.ReceptionReport
	if s.havePeer && s.jb.started {
		expected := s.jb.highest - s.firstSeq + 1
		lost := uint64(0)
		if expected > s.rcvd {
			lost = expected - s.rcvd
		}
		b := rtcp.ReceptionReport{
			SSRC: s.peerSSRC, TotalLost: uint32(min(lost, 0x7FFFFF)),
			LastSequenceNumber: uint32(s.jb.highest - 1<<16),
			Jitter:             uint32(s.jb.jitter),
			LastSenderReport:   s.lastSR,
		}
		if ei, ri := expected-s.prevExpected, s.rcvd-s.prevRcvd; ei > 0 && ei > ri {
			b.FractionLost = uint8((ei - ri) << 8 / ei)
		}
		s.prevExpected, s.prevRcvd = expected, s.rcvd
		if s.lastSR != 0 {
			b.Delay = uint32(now.Sub(s.lastSRAt) * 65536 / time.Second)
		}
		blocks = append(blocks, b)
	}
	to := s.remoteRTCP
	if s.send && s.sent > 0 {
		return &rtcp.SenderReport{
			SSRC: s.ssrc, NTPTime: ntpTime(now), RTPTime: s.ts,
			PacketCount: uint32(s.sent), OctetCount: uint32(s.octets), Reports: blocks,
		}, to
	}
	return &rtcp.ReceiverReport{SSRC: s.ssrc, Reports: blocks}, to
}
