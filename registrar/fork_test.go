package registrar

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar/location/memstore"
)

func TestBestResponse(t *testing.T) {
	tests := []struct {
		name  string
		codes []int
		want  int
	}{
		{name: "a 6xx beats everything", codes: []int{486, 603, 302}, want: 603},
		{name: "the lowest class wins", codes: []int{500, 404, 302}, want: 302},
		{name: "4xx beats 5xx", codes: []int{503, 486}, want: 486},
		{name: "a challenge wins within 4xx", codes: []int{404, 407, 486}, want: 407},
		{name: "401 wins within 4xx", codes: []int{480, 401}, want: 401},
		{name: "503 comes last", codes: []int{503, 504}, want: 504},
		{name: "the first of equals wins", codes: []int{486, 486}, want: 486},
		{name: "a single response is chosen", codes: []int{480}, want: 480},
		{name: "nothing gives nothing", codes: nil, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rs []*sip.Response
			for _, c := range tt.codes {
				rs = append(rs, sip.NewResponse(c, "x"))
			}
			rs = append(rs, nil) // a branch that has not ended
			got := bestResponse(rs)
			switch {
			case tt.want == 0 && got != nil:
				t.Fatalf("got %d, want none", got.StatusCode)
			case tt.want != 0 && (got == nil || got.StatusCode != tt.want):
				t.Fatalf("got %v, want %d", got, tt.want)
			}
		})
	}
}

func TestFlowTokenRoundTrip(t *testing.T) {
	withSecret := func(secret string) *Registrar {
		r, err := New(memstore.New(), WithDomain("example.test"), WithSecret([]byte(secret)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := withSecret("0123456789abcdef0123")
	fk := flowKey{transport: "TCP", addr: "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535"}
	tok := r.flowToken(fk)
	got, ok := r.parseFlowToken(tok)
	if !ok || got != fk {
		t.Fatalf("parse(%q) = %v, %v", tok, got, ok)
	}
	other := withSecret("another secret, 20b")
	if _, ok := other.parseFlowToken(tok); ok {
		t.Fatal("a token signed with another secret was accepted")
	}
	if _, ok := r.parseFlowToken("ft-AAAA"); ok {
		t.Fatal("garbage was accepted")
	}
}
