package phone

import (
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestRportCorrection(t *testing.T) {
	local := netip.MustParseAddrPort("192.168.1.20:5070")
	via := func(params ...string) *sip.ViaHeader {
		v := &sip.ViaHeader{Host: "192.168.1.20", Port: 5070, Params: sip.NewParams()}
		for i := 0; i+1 < len(params); i += 2 {
			v.Params.Add(params[i], params[i+1])
		}
		return v
	}
	tests := []struct {
		name string
		via  *sip.ViaHeader
		want string
	}{
		{"the same address needs nothing", via("rport", "5070", "received", "192.168.1.20"), ""},
		{"no received or rport needs nothing", via(), ""},
		{"a NAT changes address and port", via("rport", "40112", "received", "203.0.113.9"), "203.0.113.9:40112"},
		{"a NAT that keeps the address changes the port", via("rport", "6000"), "192.168.1.20:6000"},
		{"a bad rport is ignored", via("rport", "x", "received", "203.0.113.9"), ""},
		{"no Via is ignored", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := rportCorrection(local, tt.via)
			if (tt.want == "") == ok || (ok && got.String() != tt.want) {
				t.Fatalf("got %v %v, want %q", got, ok, tt.want)
			}
		})
	}
}
