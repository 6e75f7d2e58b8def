//go:build !linux

package registrar

import (
	"errors"
	"net"
	"net/netip"
)

// rawSender sends through the poller on systems other than Linux
// (sendto_linux.go says why it does not there).
type rawSender struct{}

func newRawSender(net.PacketConn) *rawSender { return &rawSender{} }

var errLocked = errors.New("send through the poller")

func (*rawSender) send([]byte, netip.AddrPort) error { return errLocked }

func (*rawSender) close() {}
