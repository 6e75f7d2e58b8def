// Command phone is the softphone.
//
//	phone -config configs/alice.yaml                 # interactive console
//	phone -config configs/alice.yaml -call bob -play tone.wav -record heard.wav -hangup-after 5s -exit-after-call
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sipline/sipline/media"
	"github.com/sipline/sipline/media/portaudio"
	"github.com/sipline/sipline/phone"
)

type options struct {
	config        string
	call          string
	autoAnswer    bool
	play, record  string
	loop          bool
	hangupAfter   time.Duration
	exitAfterCall bool
	dtmf          string
	dtmfAt        time.Duration
	listen        string
	device        string
	devices       bool
	registrar     string
	transport     string
}

func main() {
	var o options
	flag.StringVar(&o.config, "config", "configs/alice.yaml", "config file")
	flag.StringVar(&o.call, "call", "", "call this user or URI once registered")
	flag.BoolVar(&o.autoAnswer, "auto-answer", false, "answer incoming calls at once")
	flag.StringVar(&o.play, "play", "", "send this WAV file (16-bit mono 8 kHz) instead of silence; tone:HZ sends 1 s of silence then 3 s of a tone")
	flag.BoolVar(&o.loop, "loop", false, "loop the -play file")
	flag.StringVar(&o.record, "record", "", "record what is heard to this WAV file")
	flag.DurationVar(&o.hangupAfter, "hangup-after", 0, "hang up this long after the call is answered")
	flag.BoolVar(&o.exitAfterCall, "exit-after-call", false, "exit when the first call ends")
	flag.StringVar(&o.dtmf, "dtmf", "", "send these DTMF digits (RFC 4733) during the call")
	flag.DurationVar(&o.dtmfAt, "dtmf-at", time.Second, "when to send -dtmf, counted from the answer")
	flag.StringVar(&o.listen, "listen", "", "override the config's listen address")
	flag.StringVar(&o.device, "device", "", "sound card by index or name (default: the system's); used unless -play or -record is given")
	flag.BoolVar(&o.devices, "devices", false, "list the sound cards and exit")
	flag.StringVar(&o.registrar, "registrar", "", "override the config's registrar address")
	flag.StringVar(&o.transport, "transport", "", "override the config's transport")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "phone:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.devices {
		return listDevices(os.Stdout)
	}
	cfg, err := loadConfig(o.config)
	if err != nil {
		return err
	}
	for dst, v := range map[*string]string{&cfg.Listen: o.listen, &cfg.Registrar: o.registrar, &cfg.Transport: o.transport} {
		if v != "" {
			*dst = v
		}
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if cfg.Log.Format == "json" {
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)

	if o.play != "" || o.record != "" {
		// Fail now, not when the call starts.
		if _, _, err := openAudio(o); err != nil {
			return err
		}
	} else if d, err := portaudio.Open(o.device); err != nil {
		// A phone with no sound card still registers and takes calls, in silence.
		log.Warn("no sound card: calls will be silent", "error", err)
	} else {
		_ = d.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var out sync.Mutex
	say := func(format string, a ...any) {
		out.Lock()
		fmt.Printf(format+"\n", a...)
		out.Unlock()
	}
	var ph *phone.Phone
	firstEnded := make(chan struct{})
	var endOnce sync.Once
	events := func(e phone.Event) {
		switch e.Kind {
		case "ended":
			say("[%s] %s", e.Kind, e.Detail)
			endOnce.Do(func() { close(firstEnded) })
		case "answered":
			say("[answered] call %s", e.CallID)
			if o.hangupAfter > 0 {
				go func() {
					select {
					case <-time.After(o.hangupAfter):
						hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						_ = e.Call.Hangup(hctx)
						cancel()
					case <-e.Call.Done():
					}
				}()
			}
			if o.dtmf != "" {
				go func() {
					time.Sleep(o.dtmfAt)
					if err := e.Call.SendDTMF(o.dtmf); err != nil {
						say("[dtmf] %v", err)
					}
				}()
			}
		case "incoming":
			say("[incoming] call %s from %s (answer / reject)", e.CallID, e.Detail)
		default:
			if e.CallID != "" {
				say("[%s] call %s %s", e.Kind, e.CallID, e.Detail)
			} else {
				say("[%s] %s", e.Kind, e.Detail)
			}
		}
	}
	tlsConf, err := tlsConfig(cfg.TLSCA)
	if err != nil {
		return fmt.Errorf("config %s: tls_ca: %w", o.config, err)
	}
	ph, err = phone.New(phone.Config{
		TLS:  tlsConf,
		User: cfg.User, Password: cfg.Password, Domain: cfg.Domain, Registrar: cfg.Registrar,
		Transport: cfg.Transport, Listen: cfg.Listen, Expires: cfg.Expires, Codecs: cfg.Codecs,
		Keepalive:  time.Duration(cfg.Keepalive) * time.Second,
		AutoAnswer: o.autoAnswer, Events: events, Logger: log,
		Audio: func() (media.Source, media.Sink, error) { return openAudio(o) },
	})
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- ph.Run(ctx, func() { close(ready) }) }()

	select {
	case <-ready:
	case err := <-done:
		return err
	}
	if o.call != "" {
		if _, err := ph.Call(ctx, o.call); err != nil {
			return err
		}
	}
	go console(ctx, ph, say, stop)
	if o.exitAfterCall {
		select {
		case <-firstEnded:
			stop()
		case <-ctx.Done():
		}
	}
	return <-done
}

// openAudio opens a call's audio: the -play and -record files, or else
// the sound card (or silence, when there is none).
func openAudio(o options) (media.Source, media.Sink, error) {
	if o.play == "" && o.record == "" {
		d, err := portaudio.Open(o.device)
		if err != nil {
			return nil, nil, nil // said at start-up
		}
		return d, d, nil
	}
	var src media.Source
	var sink media.Sink
	if hz, ok := strings.CutPrefix(o.play, "tone:"); ok {
		f, err := strconv.ParseFloat(hz, 64)
		if err != nil || f <= 0 || f >= 4000 {
			return nil, nil, fmt.Errorf("-play %s: want tone:HZ below 4000", o.play)
		}
		src = media.NewPCMSource(media.Tone(f, 8000, time.Second, 3*time.Second, 0.5), o.loop)
	} else if o.play != "" {
		s, err := media.OpenWAV(o.play, 8000, o.loop)
		if err != nil {
			return nil, nil, err
		}
		src = s
	}
	if o.record != "" {
		s, err := media.CreateWAV(o.record, 8000)
		if err != nil {
			return nil, nil, err
		}
		sink = s
	}
	return src, sink, nil
}

// console reads commands from stdin.
func console(ctx context.Context, ph *phone.Phone, say func(string, ...any), quit func()) {
	say("commands: call <user|uri>, answer, reject, hangup, hold, resume, dtmf <digits>, status, devices, quit")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		calls := ph.Calls()
		var c *phone.Call
		if len(calls) > 0 {
			c = calls[0]
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		switch f[0] {
		case "call":
			if len(f) < 2 {
				err = fmt.Errorf("call whom?")
				break
			}
			_, err = ph.Call(ctx, f[1])
		case "answer", "reject", "hangup", "dtmf", "hold", "resume":
			if c == nil {
				err = fmt.Errorf("no call")
				break
			}
			switch f[0] {
			case "answer":
				err = c.Answer()
			case "reject":
				err = c.Reject(486)
			case "hangup":
				err = c.Hangup(cctx)
			case "hold":
				err = c.Hold(cctx)
			case "resume":
				err = c.Resume(cctx)
			case "dtmf":
				if len(f) < 2 {
					err = fmt.Errorf("dtmf which digits?")
				} else {
					err = c.SendDTMF(f[1])
				}
			}
		case "status":
			if c == nil {
				say("no call")
			}
			for _, c := range calls {
				say("call %s %s %s", c.ID, c.Peer, c.State())
			}
		case "devices":
			err = listDevices(os.Stdout)
		case "quit", "exit":
			cancel()
			quit()
			return
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		cancel()
		if err != nil {
			say("error: %v", err)
		}
	}
}

// listDevices prints the sound cards.
func listDevices(w io.Writer) error {
	ds, err := portaudio.Devices()
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		fmt.Fprintln(w, "no sound cards")
	}
	for _, d := range ds {
		def := ""
		if d.DefaultInput || d.DefaultOutput {
			def = " (default)"
		}
		fmt.Fprintf(w, "%d %q %s: %d in, %d out, %.0f Hz%s\n", d.Index, d.Name, d.HostAPI, d.InputChannels, d.OutputChannels, d.DefaultRate, def)
	}
	return nil
}

// tlsConfig trusts the CA certificates in the PEM file path, or the
// system's when path is empty.
func tlsConfig(path string) (*tls.Config, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
