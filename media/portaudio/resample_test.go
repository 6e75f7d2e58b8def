package portaudio

import (
	"math"
	"testing"

	"github.com/sipline/sipline/media/mediatest"
)

func TestResamplerKeepsToneAndRate(t *testing.T) {
	for _, tt := range []struct{ from, to float64 }{{48000, 8000}, {44100, 8000}, {8000, 48000}, {8000, 44100}, {8000, 8000}} {
		t.Run("", func(t *testing.T) {
			r := newResampler(tt.from, tt.to)
			// One second of 1000 Hz at from, fed in 20 ms frames.
			frame := int(tt.from / 50)
			var out []int16
			for f := range 50 {
				in := make([]int16, frame)
				for i := range in {
					n := f*frame + i
					in[i] = int16(16000 * math.Sin(2*math.Pi*1000*float64(n)/tt.from))
				}
				out = r.convert(out, in)
			}
			if d := math.Abs(float64(len(out)) - tt.to); d > tt.to/tt.from+2 { // the last few wait for the next frame
				t.Fatalf("%v→%v: %d samples for one second", tt.from, tt.to, len(out))
			}
			if p := mediatest.Power(out, 1000, int(tt.to)); p < 0.1 {
				t.Fatalf("%v→%v: 1000 Hz power %.3f after conversion", tt.from, tt.to, p)
			}
		})
	}
}
