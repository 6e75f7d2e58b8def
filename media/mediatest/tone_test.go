package mediatest

import (
	"testing"
	"time"
)

func TestGoertzelFindsTheToneAndOnlyIt(t *testing.T) {
	s := Tone(1000, 8000, 500*time.Millisecond, time.Second, 0.5)
	if p := Power(s[4000:], 1000, 8000); p < 0.2 {
		t.Fatalf("1000 Hz power %.3f in a 1000 Hz tone", p)
	}
	if p := Power(s[4000:], 440, 8000); p > 0.001 {
		t.Fatalf("440 Hz power %.4f in a 1000 Hz tone", p)
	}
	start, end, ok := Span(s, 1000, 8000, 0.05)
	if !ok || start != 500*time.Millisecond || end != 1500*time.Millisecond {
		t.Fatalf("span %v..%v %v", start, end, ok)
	}
}
