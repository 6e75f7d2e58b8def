package sdp

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func local() Local {
	return Local{
		Addr: netip.MustParseAddr("127.0.0.1"), Port: 4000,
		Codecs:   []Codec{PCMU, PCMA, TelephoneEvent},
		Username: "sipline", SessionID: 42, Version: 1,
	}
}

func (r Result) String() string {
	dtmf := "none"
	if r.DTMF.Name != "" {
		dtmf = r.DTMF.String()
	}
	return fmt.Sprintf("remote=%s rtcp=%s codec=%s fmtp=%q dtmf=%s ptime=%d direction=%s",
		r.Remote, r.RemoteRTCP, r.Codec, r.Codec.Fmtp, dtmf, r.Ptime, r.Direction)
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func outcome(sdp []byte, res Result, err error) string {
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	out := strings.ReplaceAll(string(sdp), "\r\n", "\n")
	if res.Codec.Name != "" {
		out += "-- result --\n" + res.String() + "\n"
	}
	return out
}

// Every offer in testdata, the real ones of Linphone and baresip among
// them, gets the answer in its golden file.
func TestAnswerGolden(t *testing.T) {
	offers, _ := filepath.Glob("testdata/interop/*-offer.sdp.txt")
	cases, _ := filepath.Glob("testdata/cases/*.sdp")
	if len(offers) < 2 || len(cases) < 5 {
		t.Fatalf("testdata is missing: %d offers, %d cases", len(offers), len(cases))
	}
	for _, f := range append(offers, cases...) {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".txt"), ".sdp")
		t.Run(name, func(t *testing.T) {
			offer, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ans, res, err := Answer(offer, local())
			golden(t, name+".answer", outcome(ans, res, err))
			if err == nil {
				// What we answer parses, and reads back the same way.
				back, err := Negotiated(ans, Local{Codecs: local().Codecs})
				if err != nil {
					t.Fatalf("our answer does not parse back: %v", err)
				}
				if !back.Codec.Matches(res.Codec) || back.Codec.PT != res.Codec.PT || back.DTMF.PT != res.DTMF.PT {
					t.Fatalf("answer reads back as %v, want %v", back, res)
				}
			}
		})
	}
}

// The real answers of Linphone and baresip to an offer of ours.
func TestNegotiatedGolden(t *testing.T) {
	answers, _ := filepath.Glob("testdata/interop/*-answer.sdp.txt")
	if len(answers) < 2 {
		t.Fatalf("testdata is missing: %d answers", len(answers))
	}
	for _, f := range answers {
		name := strings.TrimSuffix(filepath.Base(f), ".sdp.txt")
		t.Run(name, func(t *testing.T) {
			ans, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Negotiated(ans, local())
			golden(t, name+".negotiated", outcome(nil, res, err))
		})
	}
}

func TestOfferGolden(t *testing.T) {
	l := local()
	offer, err := Offer(l)
	golden(t, "offer", outcome(offer, Result{}, err))
	l.Direction, l.Version = SendOnly, 2
	hold, err := Offer(l)
	golden(t, "offer-hold", outcome(hold, Result{}, err))
}

func TestNoCommonCodecListsBothSides(t *testing.T) {
	offer, err := os.ReadFile("testdata/cases/no-common-codec.sdp")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Answer(offer, local())
	if !errors.Is(err, ErrNoCodec) || !strings.Contains(err.Error(), "opus/48000/2") || !strings.Contains(err.Error(), "PCMU/8000") {
		t.Fatalf("err = %v", err)
	}
}

func TestDirections(t *testing.T) {
	tests := []struct {
		offer, want, answer Direction
	}{
		{SendRecv, SendRecv, SendRecv},
		{SendOnly, SendRecv, RecvOnly},
		{RecvOnly, SendRecv, SendOnly},
		{Inactive, SendRecv, Inactive},
		{SendRecv, SendOnly, SendOnly},
		{SendOnly, SendOnly, Inactive},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s offered to a side that wants %s", tt.offer, tt.want), func(t *testing.T) {
			if got := answerDirection(tt.offer, tt.want); got != tt.answer {
				t.Fatalf("got %s, want %s", got, tt.answer)
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	for _, in := range []string{"", "garbage", "v=0\r\nm=audio x RTP/AVP 0\r\n"} {
		if _, _, err := Answer([]byte(in), local()); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNoAudio) {
			t.Errorf("Answer(%q) err = %v", in, err)
		}
	}
	if _, err := Offer(Local{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Offer with no address: %v", err)
	}
}

func FuzzAnswer(f *testing.F) {
	for _, p := range []string{"testdata/interop/linphonec-offer.sdp.txt", "testdata/interop/baresip-offer.sdp.txt", "testdata/cases/media-level-connection.sdp"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, offer []byte) {
		ans, _, err := Answer(offer, local())
		if err != nil {
			return
		}
		if _, err := Negotiated(ans, local()); err != nil {
			t.Fatalf("our answer to %q does not parse back: %v\n%s", offer, err, ans)
		}
	})
}

func BenchmarkAnswer(b *testing.B) {
	offer, err := os.ReadFile("testdata/interop/linphonec-offer.sdp.txt")
	if err != nil {
		b.Fatal(err)
	}
	l := local()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Answer(offer, l); err != nil {
			b.Fatal(err)
		}
	}
}
