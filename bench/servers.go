package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// server is our registrar or Kamailio, on its own loopback port.
type server struct {
	*proc
	who   string
	addr  string
	admin string // ours only
	dir   string
}

// start runs who ("ours" or "kamailio") with n users u0..un-1 (password
// ui-secret) and alice and bob, with or without digest auth.
func (h *harness) start(who string, auth bool, store, dir string, n int) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{who: who, addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
	if who == "kamailio" {
		err = h.startKamailio(s, port, auth, n)
	} else {
		err = h.startOurs(s, port, auth, store, n)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
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
	return s.waitReady()
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

func (h *harness) startKamailio(s *server, port int, auth bool, n int) error {
	var users strings.Builder
	users.WriteString("\t$sht(users=>alice) = \"alice-secret\";\n\t$sht(users=>bob) = \"bob-secret\";\n")
	for i := range n {
		fmt.Fprintf(&users, "\t$sht(users=>u%d) = \"u%d-secret\";\n", i, i)
	}
	define := ""
	if auth {
		define = "#!define WITH_AUTH\n"
	}
	cfg := filepath.Join(s.dir, "kamailio.cfg")
	text := fmt.Sprintf(kamailioCfg, define, port, socketBuffer, users.String())
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return err
	}
	var err error
	s.proc, err = startProc("kamailio", s.dir, exec.Command("kamailio", "-f", cfg, "-DD", "-E", "-m", "1024", "-M", "256",
		"-Y", s.dir))
	if err != nil {
		return err
	}
	return s.waitReady()
}

// kamailioCfg is Kamailio as a registrar and stateful proxy doing the
// same work as ours: usrloc in memory, passwords in an in-memory htable,
// MD5 digest with qop=auth, Record-Route on calls. Workers: one per core
// and one more, as its documentation suggests for UDP.
const kamailioCfg = `#!KAMAILIO
%[1]s
debug=1
log_stderror=yes
children=3
listen=udp:127.0.0.1:%[2]d
listen=tcp:127.0.0.1:%[2]d
maxbuffer=%[3]d
auto_aliases=no
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "htable.so"
loadmodule "auth.so"
modparam("htable", "htable", "users=>size=16;")
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "hash_size", 14)
modparam("registrar", "max_expires", 7200)

event_route[htable:mod-init] {
%[4]s}

request_route {
	if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
	if (is_method("OPTIONS") && $rU == $null) { sl_send_reply("200", "OK"); exit; }
	if (has_totag()) {
		if (loose_route()) { t_relay(); exit; }
		if (is_method("ACK") && t_check_trans()) { t_relay(); }
		exit;
	}
	if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
	t_check_trans();
	remove_hf("Route");
	if (is_method("REGISTER")) {
#!ifdef WITH_AUTH
		if (!pv_www_authenticate("$td", "$sht(users=>$au)", "0")) { www_challenge("$td", "1"); exit; }
		if ($au != $tU) { sl_send_reply("403", "Forbidden"); exit; }
		consume_credentials();
#!endif
		save("location");
		exit;
	}
#!ifdef WITH_AUTH
	if (is_method("INVITE|MESSAGE") && $fd == "127.0.0.1") {
		if (!pv_proxy_authenticate("$fd", "$sht(users=>$au)", "0")) { proxy_challenge("$fd", "1"); exit; }
		consume_credentials();
	}
#!endif
	if (is_method("INVITE")) { record_route(); }
	if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
	t_relay();
}
`
