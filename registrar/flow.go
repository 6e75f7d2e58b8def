package registrar

import (
	"crypto/hmac"
	"encoding/base64"
	"net"
	"strings"
	"sync"
)

// flowKey names a flow (RFC 5626 §3.1): the transport and the remote
// "ip:port" a UA sends from.
type flowKey struct {
	transport string // "UDP", "TCP", "TLS"
	addr      string
}

func (f flowKey) stream() bool { return f.transport == "TCP" || f.transport == "TLS" }

func (f flowKey) String() string { return f.transport + ":" + f.addr }

// TrackFlows wraps a stream listener (TCP, or TLS over it) so the
// registrar sees each connection open and close. When a connection closes,
// the bindings registered over it stop being used at once.
func (r *Registrar) TrackFlows(l net.Listener, transport string) net.Listener {
	transport = strings.ToUpper(transport)
	r.mu.Lock()
	r.tracked[transport] = true
	r.mu.Unlock()
	return &flowListener{Listener: l, r: r, transport: transport}
}

type flowListener struct {
	net.Listener
	r         *Registrar
	transport string
}

func (l *flowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	fk := flowKey{transport: l.transport, addr: c.RemoteAddr().String()}
	l.r.mu.Lock()
	l.r.live[fk] = struct{}{}
	l.r.mu.Unlock()
	return &flowConn{Conn: c, r: l.r, key: fk}, nil
}

// flowConn reports its end once, whether the peer closed it, a read
// failed (TCP keepalive probes included) or sipgo closed it.
type flowConn struct {
	net.Conn
	r    *Registrar
	key  flowKey
	once sync.Once
}

func (c *flowConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.ended()
	}
	return n, err
}

func (c *flowConn) Close() error {
	err := c.Conn.Close()
	c.ended()
	return err
}

func (c *flowConn) ended() {
	c.once.Do(func() {
		c.r.mu.Lock()
		delete(c.r.live, c.key)
		c.r.mu.Unlock()
		go c.r.dropFlow(c.key)
	})
}

// flowAlive reports whether a stream flow is open in this process, as far
// as it knows: flows of a transport it does not track count as alive.
func (r *Registrar) flowAlive(fk flowKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.live[fk]
	return ok || !r.tracked[fk.transport]
}

// Flow tokens go in the user part of our Record-Route (RFC 5626 §5.3), so
// that requests inside a dialog reach a UA over the flow its dialog began
// on. They are signed so that nobody can aim the proxy elsewhere.

const flowTokenPrefix = "ft-"

// flowMAC is the length of a flow token's HMAC, truncated.
const flowMAC = 9

func (r *Registrar) flowToken(fk flowKey) string {
	var raw, signed [64]byte
	key := append(append(append(raw[:0], fk.transport...), '|'), fk.addr...)
	return flowTokenPrefix + base64.RawURLEncoding.EncodeToString(append(r.flowMACs.Append(signed[:0], key, flowMAC), key...))
}

func (r *Registrar) parseFlowToken(tok string) (flowKey, bool) {
	if !strings.HasPrefix(tok, flowTokenPrefix) {
		return flowKey{}, false
	}
	var dec [128]byte
	enc := tok[len(flowTokenPrefix):]
	if base64.RawURLEncoding.DecodedLen(len(enc)) > len(dec) {
		return flowKey{}, false
	}
	n, err := base64.RawURLEncoding.Decode(dec[:], []byte(enc))
	if err != nil || n <= flowMAC {
		return flowKey{}, false
	}
	var mac [flowMAC]byte
	sum, raw := dec[:flowMAC], dec[flowMAC:n]
	if !hmac.Equal(sum, r.flowMACs.Append(mac[:0], raw, flowMAC)) {
		return flowKey{}, false
	}
	transport, addr, ok := strings.Cut(string(raw), "|")
	if !ok {
		return flowKey{}, false
	}
	return flowKey{transport: transport, addr: addr}, true
}
