// Package mediatest makes and measures test audio: tones, and a Goertzel
// detector that finds a tone's power, onset and duration in a recording.
package mediatest

import (
	"math"
	"time"

	"github.com/sipline/sipline/media"
)

// Tone returns a sine of freq Hz at rate Hz lasting d, with peak amplitude
// amp (0..1 of full scale), after lead of silence.
func Tone(freq float64, rate int, lead, d time.Duration, amp float64) []int16 {
	return media.Tone(freq, rate, lead, d, amp)
}

// Power is the Goertzel power of freq in samples, normalised so that a
// full-scale sine gives about 1.
func Power(samples []int16, freq float64, rate int) float64 {
	if len(samples) == 0 {
		return 0
	}
	k := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x)/32768 + k*s1 - s2
		s2, s1 = s1, s0
	}
	p := s1*s1 + s2*s2 - k*s1*s2
	n := float64(len(samples))
	return 4 * p / (n * n)
}

// Span finds where freq sounds in samples, in blocks of 20 ms: the start
// of the first block and the end of the last whose power passes
// threshold. ok is false when it never does.
func Span(samples []int16, freq float64, rate int, threshold float64) (start, end time.Duration, ok bool) {
	block := rate / 50
	first, last := -1, -1
	for i := 0; i+block <= len(samples); i += block {
		if Power(samples[i:i+block], freq, rate) >= threshold {
			if first < 0 {
				first = i
			}
			last = i + block
		}
	}
	if first < 0 {
		return 0, 0, false
	}
	dur := func(n int) time.Duration { return time.Duration(n) * time.Second / time.Duration(rate) }
	return dur(first), dur(last), true
}
