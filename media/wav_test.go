package media

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWAVRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.wav")
	w, err := CreateWAV(path, 8000)
	if err != nil {
		t.Fatal(err)
	}
	want := []int16{0, 1, -1, 32767, -32768, 1234}
	if err := w.WriteFrame(want[:3]); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(want[3:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := OpenWAV(path, 8000, false)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int16, 4)
	if err := src.ReadFrame(got); err != nil || got[3] != 32767 {
		t.Fatalf("first frame %v, %v", got, err)
	}
	if err := src.ReadFrame(got); err != nil || got[0] != -32768 || got[1] != 1234 || got[2] != 0 {
		t.Fatalf("last frame is not padded with silence: %v, %v", got, err)
	}
	if err := src.ReadFrame(got); !errors.Is(err, io.EOF) {
		t.Fatalf("after the end: %v", err)
	}
	if _, err := OpenWAV(path, 16000, false); !errors.Is(err, ErrFormat) {
		t.Fatalf("a rate mismatch is not reported: %v", err)
	}
}

func TestLoopedSourceWraps(t *testing.T) {
	src := NewPCMSource([]int16{1, 2, 3}, true)
	got := make([]int16, 7)
	if err := src.ReadFrame(got); err != nil {
		t.Fatal(err)
	}
	if want := []int16{1, 2, 3, 1, 2, 3, 1}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A file written by sox, when it is installed, reads back.
func TestReadsSoxWAV(t *testing.T) {
	if _, err := exec.LookPath("sox"); err != nil {
		t.Skip("sox not installed")
	}
	path := filepath.Join(t.TempDir(), "sox.wav")
	if out, err := exec.Command("sox", "-n", "-r", "8000", "-c", "1", "-b", "16", path, "synth", "0.1", "sine", "1000").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	samples, rate, err := ReadWAV(f)
	if err != nil || rate != 8000 || len(samples) != 800 {
		t.Fatalf("%d samples at %d Hz, %v", len(samples), rate, err)
	}
}

func TestReadWAVRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "RIFF", "RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00abcd"} {
		if _, _, err := ReadWAV(strings.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("ReadWAV(%q) = %v", in, err)
		}
	}
}
