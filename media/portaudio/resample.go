package portaudio

// resampler converts a stream of 16-bit samples from one rate to another
// by linear interpolation, after a moving average when it goes down so
// that what cannot be kept does not fold back as much. It keeps its phase
// across calls, so frames join without clicks. Speech-grade, not hi-fi.
type resampler struct {
	step  float64 // input samples per output sample
	pos   float64 // position of the next output sample, from prev
	prev  float64 // the last input sample of the previous call
	width int     // moving average width when downsampling
	hist  []float64
	hi    int
	buf   []float64 // smoothed input, reused
}

func newResampler(from, to float64) *resampler {
	r := &resampler{step: from / to}
	if r.step > 1 {
		r.width = int(r.step + 0.5)
		r.hist = make([]float64, r.width)
	}
	return r
}

// outLen is how many samples in input samples make, at most.
func (r *resampler) outLen(in int) int { return int(float64(in)/r.step) + 2 }

// convert appends the converted samples of in to out.
func (r *resampler) convert(out []int16, in []int16) []int16 {
	at := func(i int) float64 { // smoothed input sample i, -1 being prev
		if i < 0 {
			return r.prev
		}
		return float64(in[i])
	}
	var smooth []float64
	if r.width > 1 {
		if cap(r.buf) < len(in) {
			r.buf = make([]float64, len(in))
		}
		smooth = r.buf[:len(in)]
		for i, v := range in {
			r.hist[r.hi] = float64(v)
			r.hi = (r.hi + 1) % r.width
			sum := 0.0
			for _, h := range r.hist {
				sum += h
			}
			smooth[i] = sum / float64(r.width)
		}
		at = func(i int) float64 {
			if i < 0 {
				return r.prev
			}
			return smooth[i]
		}
	}
	n := float64(len(in))
	for r.pos < n-1+1e-9 {
		i := int(r.pos) - 1 // r.pos counts from prev, at index -1
		frac := r.pos - float64(int(r.pos))
		a, b := at(i), at(i+1)
		v := a + (b-a)*frac
		out = append(out, int16(max(-32768, min(32767, v))))
		r.pos += r.step
	}
	r.pos -= n
	if len(in) > 0 {
		r.prev = at(len(in) - 1)
	}
	return out
}
