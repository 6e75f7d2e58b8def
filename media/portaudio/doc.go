// Package portaudio is the sound card, through PortAudio: a device that is
// a media.Source (the microphone) and a media.Sink (the speaker) at the
// call's 8 kHz, converting from and to the device's own rate.
//
// It is the project's one cgo package: the real one builds with the
// portaudio build tag (and portaudio19-dev); without it, a stub says so.
package portaudio

import "errors"

// ErrNoDevice reports a device that cannot be found or opened; the error
// lists the devices there are.
var ErrNoDevice = errors.New("portaudio: no such audio device")

// ErrNotBuilt reports a binary built without the portaudio tag.
var ErrNotBuilt = errors.New("portaudio: built without PortAudio (go build -tags portaudio, with portaudio19-dev installed)")

// DeviceInfo describes one audio device.
type DeviceInfo struct {
	Index          int
	Name           string
	HostAPI        string
	InputChannels  int
	OutputChannels int
	DefaultRate    float64
	DefaultInput   bool
	DefaultOutput  bool
}
