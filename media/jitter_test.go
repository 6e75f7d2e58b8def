package media

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// run pushes packets (by sequence number, 20 ms apart unless told) and
// pops between them as the script says: "p5" pushes seq 5, "P" pops.
// It returns what the pops gave: the seq for a frame, "-" missing, "w"
// waiting.
func run(jb *JitterBuffer, script string) string {
	var out []string
	t0 := time.Unix(0, 0)
	for i, step := range strings.Fields(script) {
		switch step[0] {
		case 'p':
			var seq int // beyond 65535 it wraps, with the timestamp going on
			fmt.Sscan(step[1:], &seq)
			jb.Push(uint16(seq), uint32(seq)*160, []byte{byte(seq), byte(seq >> 8)}, t0.Add(time.Duration(i)*20*time.Millisecond))
		case 'P':
			payload, st := jb.Pop()
			switch st {
			case Ready:
				out = append(out, fmt.Sprint(int(payload[0])|int(payload[1])<<8))
			case Missing:
				out = append(out, "-")
			case Waiting:
				out = append(out, "w")
			}
		}
	}
	return strings.Join(out, " ")
}

func TestJitterBuffer(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string
		check  func(t *testing.T, st JitterStats)
	}{
		{name: "in order after the initial delay", script: "p1 P p2 P p3 P p4 P", want: "w 1 2 3"},
		{name: "reordered packets come out in order", script: "p1 p3 P p2 P p4 P P", want: "1 2 3 4"},
		{name: "a lost packet is missing", script: "p1 p2 P p4 P p5 P P P", want: "1 2 - 4 5"},
		{name: "duplicates are dropped", script: "p1 p1 P p2 p2 P p3 P", want: "w 1 2",
			check: func(t *testing.T, st JitterStats) {
				if st.Duplicates != 2 {
					t.Errorf("duplicates = %d, want 2", st.Duplicates)
				}
			}},
		{name: "a late packet is dropped", script: "p1 p2 P P p4 p5 P p3 P P", want: "1 2 - 4 5",
			check: func(t *testing.T, st JitterStats) {
				if st.Late != 1 || st.Missing != 1 {
					t.Errorf("late %d, missing %d; want 1 and 1", st.Late, st.Missing)
				}
			}},
		{name: "sequence numbers wrap around", script: "p65534 p65535 P p65536 P p65537 P P", want: "65534 65535 0 1"},
		{name: "reordering across the wrap", script: "p65534 p65536 P p65535 P p65537 P P", want: "65534 65535 0 1"},
		{name: "a jump far ahead restarts the stream", script: "p1 p2 P P p5000 p5001 P P", want: "1 2 5000 5001"},
		{name: "running dry refills deeper and keeps the late frame", script: "p1 p2 P P P p3 P p4 P p5 P P", want: "1 2 - w w 3 4",
			check: func(t *testing.T, st JitterStats) {
				if st.Target != 3 || st.Late != 0 {
					t.Errorf("target %d, late %d; want 3 and 0", st.Target, st.Late)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jb := NewJitterBuffer(8000, 160, 2, 10)
			if got := run(jb, tt.script); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, jb.Stats())
			}
		})
	}
}

func TestJitterBufferTargetFollowsJitter(t *testing.T) {
	smooth := NewJitterBuffer(8000, 160, 2, 10)
	jittery := NewJitterBuffer(8000, 160, 2, 10)
	t0 := time.Unix(0, 0)
	for i := range 200 {
		at := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		smooth.Push(uint16(i), uint32(i*160), []byte{0}, at)
		smooth.Pop()
		// Up to 60 ms late, in a repeating pattern.
		jittery.Push(uint16(i), uint32(i*160), []byte{0}, at.Add(time.Duration(i%4)*20*time.Millisecond))
		jittery.Pop()
	}
	s, j := smooth.Stats(), jittery.Stats()
	if s.Target != 2 || j.Target <= s.Target || j.Jitter < 10 {
		t.Fatalf("smooth target %d (jitter %.1f ms), jittery target %d (jitter %.1f ms)", s.Target, s.Jitter, j.Target, j.Jitter)
	}
}

func TestConceal(t *testing.T) {
	last := []int16{1000, -1000}
	dst := make([]int16, 2)
	Conceal(dst, last, 1)
	if dst[0] != 500 || dst[1] != -500 {
		t.Fatalf("first loss: %v", dst)
	}
	Conceal(dst, last, 4)
	if dst[0] != 0 || dst[1] != 0 {
		t.Fatalf("fourth loss is not silent: %v", dst)
	}
}

func BenchmarkJitterBufferPushPop(b *testing.B) {
	jb := NewJitterBuffer(8000, 160, 2, 10)
	payload := make([]byte, 160)
	pcm := make([]int16, 160)
	t0 := time.Unix(0, 0)
	var seq uint16
	b.ReportAllocs()
	for b.Loop() {
		jb.Push(seq, uint32(seq)*160, payload, t0.Add(time.Duration(seq)*20*time.Millisecond))
		if p, st := jb.Pop(); st == Ready {
			PCMU{}.DecodeTo(pcm, p)
		}
		seq++
	}
}
