package phone

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The flow to the registrar gets a heartbeat (RFC 5626 §4.4): on TCP a
// CRLFCRLF ping that the registrar answers with a CRLF pong; on UDP a
// CRLFCRLF that keeps NAT bindings open. When the connection is gone, a
// ping cannot be written, or a pong does not come back in time, the phone
// re-registers at once, over a new connection.

// pongTimeout is how long a ping may wait for its pong (RFC 5626 §4.4.1).
const pongTimeout = 10 * time.Second

// flowMonitor watches the flow to the registrar.
type flowMonitor struct {
	remote   string       // the registrar, "ip:port"
	lastPong atomic.Int64 // unix nanos
}

// readFilter sees every read of sipgo's stream transports, so it sees the
// pongs, which sipgo swallows.
func (m *flowMonitor) readFilter(info sip.TransportReadProps, data []byte) ([]byte, error) {
	if len(data) <= 4 && len(bytes.Trim(data, "\r\n")) == 0 && info.RemoteAddr != nil && info.RemoteAddr.String() == m.remote {
		m.lastPong.Store(time.Now().UnixNano())
	}
	return data, nil
}

// keepalive pings every interval and calls failed with the reason when the
// flow is dead. It returns when ctx ends.
func (p *Phone) keepalive(ctx context.Context, interval time.Duration, failed func(reason string)) {
	t := time.NewTicker(min(interval, time.Second))
	defer t.Stop()
	var pingAt time.Time
	lastPing := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !p.registered.Load() {
			pingAt = time.Time{}
			continue
		}
		tp := p.ua.TransportLayer()
		if p.cfg.Transport == "udp" {
			if time.Since(lastPing) >= interval {
				lastPing = time.Now()
				if c, err := tp.GetConnection("udp", p.local.String()); err == nil && c != nil {
					if pc, ok := c.(interface {
						WriteTo([]byte, net.Addr) (int, error)
					}); ok {
						if addr, err := net.ResolveUDPAddr("udp", p.monitor.remote); err == nil {
							_, _ = pc.WriteTo([]byte("\r\n\r\n"), addr)
						}
					}
				}
			}
			continue
		}
		c, err := tp.GetConnection(p.cfg.Transport, p.monitor.remote)
		if err != nil || c == nil {
			failed("the connection to the registrar is gone")
			pingAt = time.Time{}
			continue
		}
		switch {
		case !pingAt.IsZero() && p.monitor.lastPong.Load() < pingAt.UnixNano() && time.Since(pingAt) > pongTimeout:
			failed("no pong to a keepalive ping")
			_ = c.Close()
			pingAt = time.Time{}
		case time.Since(lastPing) >= interval:
			lastPing = time.Now()
			w, ok := c.(io.Writer)
			if !ok {
				break
			}
			if _, err := w.Write([]byte("\r\n\r\n")); err != nil {
				failed("keepalive ping failed: " + err.Error())
				_ = c.Close()
				pingAt = time.Time{}
			} else if pingAt.IsZero() || p.monitor.lastPong.Load() >= pingAt.UnixNano() {
				pingAt = lastPing
			}
		}
		_, _ = c.TryClose()
	}
}
