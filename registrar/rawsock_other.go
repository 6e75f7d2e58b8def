//go:build !linux

package registrar

import (
	"errors"
	"net"
	"net/netip"
)

// rawSender sends through the poller on systems other than Linux
// (rawsock_linux.go says why it does not there).
type rawSender struct{}

func newRawSender(net.PacketConn) *rawSender { return &rawSender{} }

var errLocked = errors.New("send through the poller")

func (*rawSender) send([]byte, netip.AddrPort) error { return errLocked }

func (*rawSender) close() {}

// rawReader reads through the poller on systems other than Linux.
type rawReader struct{}

func newRawReader(net.PacketConn, []byte) *rawReader { return nil }

func (*rawReader) readFrom() (int, net.Addr, error) { return 0, nil, errLocked }
