package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// ErrFormat reports audio in a format this package does not handle.
var ErrFormat = errors.New("media: unsupported audio format")

// Source gives audio one frame at a time.
type Source interface {
	// ReadFrame fills pcm with the next samples. It returns io.EOF when
	// the audio has ended.
	ReadFrame(pcm []int16) error
	Close() error
}

// Sink takes audio one frame at a time.
type Sink interface {
	WriteFrame(pcm []int16) error
	Close() error
}

// WAVSource plays a 16-bit mono PCM WAV file, once or looped.
type WAVSource struct {
	samples []int16
	pos     int
	loop    bool
}

var _ Source = (*WAVSource)(nil)

// OpenWAV reads the WAV file at path, which must be 16-bit mono PCM at
// rate Hz.
func OpenWAV(path string, rate int, loop bool) (*WAVSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	defer f.Close()
	samples, fileRate, err := ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("media: %s: %w", path, err)
	}
	if fileRate != rate {
		return nil, fmt.Errorf("%w: %s is %d Hz, want %d Hz (sox in.wav -r %d -c 1 -b 16 out.wav)", ErrFormat, path, fileRate, rate, rate)
	}
	return &WAVSource{samples: samples, loop: loop}, nil
}

// NewPCMSource plays samples, once or looped.
func NewPCMSource(samples []int16, loop bool) *WAVSource {
	return &WAVSource{samples: samples, loop: loop}
}

// ReadFrame implements Source. The last frame of a file played once is
// padded with silence.
func (s *WAVSource) ReadFrame(pcm []int16) error {
	if len(s.samples) == 0 || (!s.loop && s.pos >= len(s.samples)) {
		return io.EOF
	}
	for i := range pcm {
		if s.pos >= len(s.samples) {
			if !s.loop {
				clear(pcm[i:])
				return nil
			}
			s.pos = 0
		}
		pcm[i] = s.samples[s.pos]
		s.pos++
	}
	return nil
}

// Close implements Source.
func (s *WAVSource) Close() error { return nil }

// ReadWAV reads a 16-bit mono PCM WAV stream and returns its samples and
// sample rate.
func ReadWAV(r io.Reader) ([]int16, int, error) {
	var riff [12]byte
	if _, err := io.ReadFull(r, riff[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: no RIFF header: %w", ErrFormat, err)
	}
	if string(riff[0:4]) != "RIFF" || string(riff[8:12]) != "WAVE" {
		return nil, 0, fmt.Errorf("%w: not a WAV file", ErrFormat)
	}
	rate := 0
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, 0, fmt.Errorf("%w: no data chunk: %w", ErrFormat, err)
		}
		size := binary.LittleEndian.Uint32(hdr[4:])
		switch string(hdr[0:4]) {
		case "fmt ":
			if size < 16 || size > 1<<16 {
				return nil, 0, fmt.Errorf("%w: fmt chunk of %d bytes", ErrFormat, size)
			}
			b := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, 0, fmt.Errorf("%w: %w", ErrFormat, err)
			}
			format, channels := binary.LittleEndian.Uint16(b[0:]), binary.LittleEndian.Uint16(b[2:])
			rate = int(binary.LittleEndian.Uint32(b[4:]))
			bits := binary.LittleEndian.Uint16(b[14:])
			if (format != 1 && format != 0xFFFE) || channels != 1 || bits != 16 {
				return nil, 0, fmt.Errorf("%w: format %d, %d channels, %d bits; want 16-bit mono PCM", ErrFormat, format, channels, bits)
			}
		case "data":
			if rate == 0 {
				return nil, 0, fmt.Errorf("%w: data before fmt", ErrFormat)
			}
			data, err := io.ReadAll(io.LimitReader(r, int64(size)))
			if err != nil {
				return nil, 0, fmt.Errorf("%w: %w", ErrFormat, err)
			}
			samples := make([]int16, len(data)/2)
			for i := range samples {
				samples[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
			}
			return samples, rate, nil
		default:
			if _, err := io.CopyN(io.Discard, r, int64(size+size%2)); err != nil {
				return nil, 0, fmt.Errorf("%w: %w", ErrFormat, err)
			}
		}
	}
}

// WAVSink records 16-bit mono PCM to a WAV file.
type WAVSink struct {
	f    *os.File
	rate int
	n    int64 // data bytes written
	buf  []byte
}

var _ Sink = (*WAVSink)(nil)

// CreateWAV creates path for recording at rate Hz.
func CreateWAV(path string, rate int) (*WAVSink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	s := &WAVSink{f: f, rate: rate}
	if _, err := f.Write(wavHeader(rate, 0)); err != nil {
		f.Close()
		return nil, fmt.Errorf("media: %s: %w", path, err)
	}
	return s, nil
}

// WriteFrame implements Sink.
func (s *WAVSink) WriteFrame(pcm []int16) error {
	if cap(s.buf) < 2*len(pcm) {
		s.buf = make([]byte, 2*len(pcm))
	}
	b := s.buf[:2*len(pcm)]
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	n, err := s.f.Write(b)
	s.n += int64(n)
	if err != nil {
		return fmt.Errorf("media: %s: %w", s.f.Name(), err)
	}
	return nil
}

// Close writes the final sizes into the header and closes the file.
func (s *WAVSink) Close() error {
	if s.f == nil {
		return nil
	}
	_, err := s.f.WriteAt(wavHeader(s.rate, s.n), 0)
	err = errors.Join(err, s.f.Close())
	s.f = nil
	if err != nil {
		return fmt.Errorf("media: close wav: %w", err)
	}
	return nil
}

func wavHeader(rate int, dataBytes int64) []byte {
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+dataBytes))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], 1) // mono
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(dataBytes))
	return h
}

// Tone returns lead of silence, then a sine of freq Hz lasting d at peak
// amplitude amp (0..1 of full scale), sampled at rate Hz: a test signal.
func Tone(freq float64, rate int, lead, d time.Duration, amp float64) []int16 {
	n0 := int(lead.Seconds() * float64(rate))
	n := int(d.Seconds() * float64(rate))
	out := make([]int16, n0+n)
	for i := range n {
		out[n0+i] = int16(amp * 32767 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return out
}
