package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sipline/sipline/internal/kamailio"
)

// server is our registrar or Kamailio, on its own loopback port.
type server struct {
	*proc
	who   string
	addr  string
	port  int
	admin string // ours only
	dir   string
}

// start runs who ("ours" or "kamailio") with n users u0..un-1 (password
// ui-secret) and alice and bob, with or without digest auth.
func (h *harness) start(who string, auth bool, store, dir string, n int) (*server, error) {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &server{who: who, addr: "127.0.0.1:" + strconv.Itoa(port), port: port, dir: dir}
		if who == "kamailio" {
			err = h.startKamailio(s, port, auth, n)
		} else {
			err = h.startOurs(s, port, auth, store, n)
		}
		// A free port can be taken, by sipp's or the prober's sockets,
		// between freePort and the server's bind: take another.
		if err != nil && attempt < 3 && strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			h.log.Printf("  %s: port %d taken meanwhile, trying another", who, port)
			continue
		}
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

func (h *harness) startOurs(s *server, port int, auth bool, store string, n int) error {
	aport, err := freePort()
	if err != nil {
		return err
	}
	s.admin = "127.0.0.1:" + strconv.Itoa(aport)
	var b strings.Builder
	fmt.Fprintf(&b, `listen:
  udp: %[1]s
  tcp: %[1]s
domain: 127.0.0.1
store: %[2]s
data_dir: %[3]s
expires: {max: 7200}
auth:
  algorithms: [MD5]
  disabled: %[4]t
log: {level: warn}
admin: {listen: %[5]s}
users:
  alice: {password: alice-secret}
  bob: {password: bob-secret}
`, s.addr, store, filepath.Join(s.dir, "data"), !auth, s.admin)
	for i := range n {
		fmt.Fprintf(&b, "  u%d: {password: u%d-secret}\n", i, i)
	}
	cfg := filepath.Join(s.dir, "registrar.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if s.proc, err = startProc("registrar", s.dir, exec.Command(filepath.Join(h.bin, "registrar"), "-config", cfg)); err != nil {
		return err
	}
	if err := s.waitReady(); err != nil {
		return err
	}
	if err := s.waitAdmin(); err != nil {
		s.stop()
		return err
	}
	return nil
}

// waitReady waits until the server answers SIP.
func (s *server) waitReady() error {
	deadline := time.Now().Add(20 * time.Second)
	for !sipAnswers(s.addr, 200*time.Millisecond) {
		if !s.alive() || time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("%s did not start:\n%s", s.who, s.tail())
		}
	}
	return nil
}

// waitAdmin waits until ours' admin listener answers, which may come up
// after SIP does.
func (s *server) waitAdmin() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := httpGet("http://" + s.admin + "/metrics")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: admin listener %s: %w", s.who, s.admin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) startKamailio(s *server, port int, auth bool, n int) error {
	users := map[string]string{"alice": "alice-secret", "bob": "bob-secret"}
	for i := range n {
		users[fmt.Sprintf("u%d", i)] = fmt.Sprintf("u%d-secret", i)
	}
	// Workers: one per core and one more, as Kamailio's documentation
	// suggests for UDP.
	cfg := kamailio.Config{Port: port, Workers: 3, Auth: auth, MaxBuffer: socketBuffer, Users: users}
	path := filepath.Join(s.dir, "kamailio.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return err
	}
	var err error
	// Shared memory for 100,000 bindings; private memory for parsing a
	// config with 10,000 users in it.
	s.proc, err = startProc("kamailio", s.dir, exec.Command("kamailio", "-f", path, "-DD", "-E", "-m", "1024", "-M", "256",
		"-Y", s.dir))
	if err != nil {
		return err
	}
	return s.waitReady()
}
