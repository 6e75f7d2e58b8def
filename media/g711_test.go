package media

import (
	"math"
	"testing"
)

// Reference values from CPython's audioop (lin2ulaw, ulaw2lin, lin2alaw,
// alaw2lin), an independent implementation of the same algorithm.
var g711Reference = []struct {
	in       int16
	ulaw     byte
	fromUlaw int16
	alaw     byte
	fromAlaw int16
}{
	{0, 0xff, 0, 0xd5, 8},
	{1, 0xff, 0, 0xd5, 8},
	{-1, 0x7e, -8, 0x55, -8},
	{8, 0xfe, 8, 0xd5, 8},
	{-8, 0x7e, -8, 0x55, -8},
	{100, 0xf2, 104, 0xd3, 104},
	{-100, 0x72, -104, 0x53, -104},
	{1000, 0xce, 988, 0xfa, 1008},
	{-1000, 0x4e, -988, 0x7a, -1008},
	{4000, 0xaf, 4092, 0x9a, 4032},
	{-4000, 0x2f, -4092, 0x1a, -4032},
	{12345, 0x97, 12412, 0xbd, 12544},
	{-12345, 0x17, -12412, 0x3d, -12544},
	{32767, 0x80, 32124, 0xaa, 32256},
	{-32768, 0x00, -32124, 0x2a, -32256},
}

func TestG711MatchesReference(t *testing.T) {
	for _, r := range g711Reference {
		if got := LinearToUlaw(r.in); got != r.ulaw {
			t.Errorf("µ-law(%d) = %#x, want %#x", r.in, got, r.ulaw)
		}
		if got := UlawToLinear(r.ulaw); got != r.fromUlaw {
			t.Errorf("linear(µ %#x) = %d, want %d", r.ulaw, got, r.fromUlaw)
		}
		if got := LinearToAlaw(r.in); got != r.alaw {
			t.Errorf("A-law(%d) = %#x, want %#x", r.in, got, r.alaw)
		}
		if got := AlawToLinear(r.alaw); got != r.fromAlaw {
			t.Errorf("linear(A %#x) = %d, want %d", r.alaw, got, r.fromAlaw)
		}
	}
}

// Every code word decodes to a value that encodes back to it (but for the
// two zeros of µ-law), and quantising error stays within the segment step.
func TestG711RoundTrips(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if got := LinearToUlaw(UlawToLinear(b)); got != b && !(b == 0x7f && got == 0xff) {
			t.Errorf("µ-law %#x -> %d -> %#x", b, UlawToLinear(b), got)
		}
		if got := LinearToAlaw(AlawToLinear(b)); got != b {
			t.Errorf("A-law %#x -> %d -> %#x", b, AlawToLinear(b), got)
		}
	}
	for s := -32768; s <= 32767; s += 7 {
		for name, c := range map[string]Codec{"PCMU": PCMU{}, "PCMA": PCMA{}} {
			var dst [1]byte
			var back [1]int16
			c.EncodeTo(dst[:], []int16{int16(s)})
			c.DecodeTo(back[:], dst[:])
			if err := math.Abs(float64(int(back[0]) - s)); err > math.Max(16, math.Abs(float64(s))/16) {
				t.Fatalf("%s: %d comes back as %d", name, s, back[0])
			}
		}
	}
}

func BenchmarkPCMUEncode20ms(b *testing.B) {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(float64(i)/3))
	}
	out := make([]byte, 160)
	b.ReportAllocs()
	for b.Loop() {
		PCMU{}.EncodeTo(out, pcm)
	}
}

func BenchmarkPCMUDecode20ms(b *testing.B) {
	in := make([]byte, 160)
	for i := range in {
		in[i] = byte(i)
	}
	out := make([]int16, 160)
	b.ReportAllocs()
	for b.Loop() {
		PCMU{}.DecodeTo(out, in)
	}
}
