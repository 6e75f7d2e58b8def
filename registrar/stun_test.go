package registrar

import (
	"encoding/binary"
	"net"
	"testing"
)

func TestSTUNBindingResponseCarriesTheXORMappedAddress(t *testing.T) {
	req := make([]byte, 20)
	binary.BigEndian.PutUint16(req[0:], 0x0001)
	binary.BigEndian.PutUint32(req[4:], stunCookie)
	copy(req[8:], "abcdefghijkl")
	if !isSTUNBinding(req) {
		t.Fatal("a Binding request was not recognised")
	}
	if isSTUNBinding([]byte("OPTIONS sip:x SIP/2.0\r\n")) {
		t.Fatal("SIP was taken for STUN")
	}
	for _, from := range []*net.UDPAddr{
		{IP: net.IPv4(192, 0, 2, 1), Port: 32853},
		{IP: net.ParseIP("2001:db8::1"), Port: 5060},
	} {
		res := stunResponse(req, from)
		if binary.BigEndian.Uint16(res[0:]) != 0x0101 || string(res[8:20]) != "abcdefghijkl" {
			t.Fatalf("header % x", res[:20])
		}
		a := res[20:]
		if from.IP.To4() != nil && string(a[6:12]) != "\xa1\x47\xe1\x12\xa6\x43" {
			// RFC 5769 §2.2: 192.0.2.1:32853 maps to these bytes.
			t.Fatalf("XOR-MAPPED-ADDRESS value % x differs from RFC 5769", a[6:12])
		}
		port := binary.BigEndian.Uint16(a[6:]) ^ (stunCookie >> 16)
		ip := make(net.IP, len(a)-8)
		for i := range ip {
			ip[i] = a[8+i] ^ req[4+i]
		}
		if int(port) != from.Port || !ip.Equal(from.IP) {
			t.Fatalf("mapped %v:%d, want %v", ip, port, from)
		}
	}
}
