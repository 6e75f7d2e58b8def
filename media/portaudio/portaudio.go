//go:build portaudio

package portaudio

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	pa "github.com/gordonklaus/portaudio"

	"github.com/sipline/sipline/media"
)

// rate is the call's sample rate.
const rate = 8000

var initOnce sync.Once
var initErr error

func initialize() error {
	initOnce.Do(func() { initErr = pa.Initialize() })
	return initErr
}

// Devices lists the audio devices.
func Devices() ([]DeviceInfo, error) {
	if err := initialize(); err != nil {
		return nil, fmt.Errorf("portaudio: %w", err)
	}
	ds, err := pa.Devices()
	if err != nil {
		return nil, fmt.Errorf("portaudio: %w", err)
	}
	in, _ := pa.DefaultInputDevice()
	out, _ := pa.DefaultOutputDevice()
	infos := make([]DeviceInfo, len(ds))
	for i, d := range ds {
		infos[i] = DeviceInfo{Index: i, Name: d.Name, HostAPI: d.HostApi.Name,
			InputChannels: d.MaxInputChannels, OutputChannels: d.MaxOutputChannels, DefaultRate: d.DefaultSampleRate,
			DefaultInput: d == in, DefaultOutput: d == out}
	}
	return infos, nil
}

// Open opens the device named name (its index, its name, or part of its
// name; "" for the defaults) for capture and playback at 8 kHz. A missing
// device gives ErrNoDevice and the list of those there are.
func Open(name string) (*Device, error) {
	if err := initialize(); err != nil {
		return nil, fmt.Errorf("portaudio: %w", err)
	}
	ds, err := pa.Devices()
	if err != nil {
		return nil, fmt.Errorf("portaudio: %w", err)
	}
	in, out, err := pick(ds, name)
	if err != nil {
		return nil, err
	}
	d := &Device{stop: make(chan struct{})}
	if err := d.open(in, out); err != nil {
		return nil, err
	}
	d.wg.Add(1)
	go d.loop()
	return d, nil
}

var (
	_ media.Source = (*Device)(nil)
	_ media.Sink   = (*Device)(nil)
)

func pick(ds []*pa.DeviceInfo, name string) (in, out *pa.DeviceInfo, err error) {
	if name == "" {
		in, err1 := pa.DefaultInputDevice()
		out, err2 := pa.DefaultOutputDevice()
		if err1 == nil && err2 == nil {
			return in, out, nil
		}
		return nil, nil, fmt.Errorf("%w: no default device (%v, %v); devices: %s", ErrNoDevice, err1, err2, list(ds))
	}
	if i, err := strconv.Atoi(name); err == nil && i >= 0 && i < len(ds) {
		return ds[i], ds[i], nil
	}
	for _, exact := range []bool{true, false} {
		for _, d := range ds {
			if (exact && d.Name == name) || (!exact && strings.Contains(strings.ToLower(d.Name), strings.ToLower(name))) {
				return d, d, nil
			}
		}
	}
	return nil, nil, fmt.Errorf("%w: %q; devices: %s", ErrNoDevice, name, list(ds))
}

func list(ds []*pa.DeviceInfo) string {
	if len(ds) == 0 {
		return "none (no sound card; for a headless one, see jackd's dummy backend)"
	}
	var b []string
	for i, d := range ds {
		b = append(b, fmt.Sprintf("%d %q (%s, %d in, %d out)", i, d.Name, d.HostApi.Name, d.MaxInputChannels, d.MaxOutputChannels))
	}
	return strings.Join(b, "; ")
}

// Device is an open sound card: a media.Source and a media.Sink.
//
// It moves audio between the sound card and two rings at 8 kHz, on a
// goroutine paced by the card's clock, so the call's clock and the card's
// never wait on each other. One duplex stream does both directions: on
// Linux, PortAudio's ALSA path handles that well where two half streams
// and the JACK host API's blocking mode did not.
type Device struct {
	stream        *pa.Stream
	inBuf, outBuf []int16
	down, up      *resampler

	mu       sync.Mutex
	captured ring
	playback ring

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func (d *Device) open(in, out *pa.DeviceInfo) error {
	if in.MaxInputChannels < 1 || out.MaxOutputChannels < 1 {
		return fmt.Errorf("%w: %q has %d inputs and %q %d outputs", ErrNoDevice, in.Name, in.MaxInputChannels, out.Name, out.MaxOutputChannels)
	}
	r := out.DefaultSampleRate
	d.inBuf, d.outBuf = make([]int16, int(r)/50), make([]int16, int(r)/50)
	p := pa.StreamParameters{
		Input:      pa.StreamDeviceParameters{Device: in, Channels: 1, Latency: in.DefaultLowInputLatency},
		Output:     pa.StreamDeviceParameters{Device: out, Channels: 1, Latency: out.DefaultLowOutputLatency},
		SampleRate: r, FramesPerBuffer: len(d.inBuf),
	}
	s, err := pa.OpenStream(p, d.inBuf, d.outBuf)
	if err != nil {
		return fmt.Errorf("%w: %q at %.0f Hz: %w", ErrNoDevice, in.Name, r, err)
	}
	if err := s.Start(); err != nil {
		_ = s.Close()
		return fmt.Errorf("%w: %q: %w", ErrNoDevice, in.Name, err)
	}
	d.stream, d.down, d.up = s, newResampler(r, rate), newResampler(rate, r)
	d.captured, d.playback = newRing(rate), newRing(rate)
	return nil
}

func (d *Device) loop() {
	defer d.wg.Done()
	captured := make([]int16, 0, d.down.outLen(len(d.inBuf)))
	frame := make([]int16, rate/50)
	played := make([]int16, 0, 2*len(d.outBuf))
	for {
		select {
		case <-d.stop:
			return
		default:
		}
		if err := d.stream.Read(); err != nil && !errors.Is(err, pa.InputOverflowed) {
			return
		}
		captured = d.down.convert(captured[:0], d.inBuf)
		d.mu.Lock()
		d.captured.push(captured)
		for len(played) < len(d.outBuf) {
			d.playback.pop(frame)
			played = d.up.convert(played, frame)
		}
		d.mu.Unlock()
		copy(d.outBuf, played)
		played = played[:copy(played, played[len(d.outBuf):])]
		if err := d.stream.Write(); err != nil && !errors.Is(err, pa.OutputUnderflowed) {
			return
		}
	}
}

// ReadFrame implements media.Source: what the microphone caught, silence
// if it has not caught enough yet.
func (d *Device) ReadFrame(pcm []int16) error {
	d.mu.Lock()
	d.captured.pop(pcm)
	d.mu.Unlock()
	return nil
}

// WriteFrame implements media.Sink.
func (d *Device) WriteFrame(pcm []int16) error {
	d.mu.Lock()
	d.playback.push(pcm)
	d.mu.Unlock()
	return nil
}

// Close stops the device. It is idempotent, so the call's source and sink
// may both close it.
func (d *Device) Close() error {
	var err error
	d.once.Do(func() {
		close(d.stop)
		d.wg.Wait()
		err = errors.Join(d.stream.Stop(), d.stream.Close())
	})
	return err
}

// ring is a FIFO of samples that drops the oldest when full.
type ring struct {
	buf        []int16
	head, size int
}

func newRing(n int) ring { return ring{buf: make([]int16, n)} }

func (r *ring) push(p []int16) {
	for _, v := range p {
		if r.size == len(r.buf) {
			r.head = (r.head + 1) % len(r.buf)
			r.size--
		}
		r.buf[(r.head+r.size)%len(r.buf)] = v
		r.size++
	}
}

// pop fills p, with silence past what there is.
func (r *ring) pop(p []int16) {
	for i := range p {
		if r.size == 0 {
			clear(p[i:])
			return
		}
		p[i] = r.buf[r.head]
		r.head = (r.head + 1) % len(r.buf)
		r.size--
	}
}
