//go:build !linux

package registrar

import "net"

// rawReceiver is Linux's only (recvfrom_linux.go); elsewhere the readers
// read through the poller.
type rawReceiver struct{}

func newRawReceiver(net.PacketConn) *rawReceiver { return nil }

func (*rawReceiver) recv([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }

func (*rawReceiver) close() {}

func (*rawReceiver) reserve(int) {}

func (*rawReceiver) thread() func() { return func() {} }

func (*rawReceiver) release() {}
