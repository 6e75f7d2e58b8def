//go:build !portaudio

package portaudio

// Devices lists the audio devices; without PortAudio there are none.
func Devices() ([]DeviceInfo, error) { return nil, ErrNotBuilt }

// Device is an open sound card; without PortAudio there is none.
type Device struct{}

// Open opens an audio device; without PortAudio it cannot.
func Open(name string) (*Device, error) { return nil, ErrNotBuilt }

// ReadFrame reads nothing.
func (d *Device) ReadFrame(pcm []int16) error { return ErrNotBuilt }

// WriteFrame writes nothing.
func (d *Device) WriteFrame(pcm []int16) error { return ErrNotBuilt }

// Close does nothing.
func (d *Device) Close() error { return nil }
