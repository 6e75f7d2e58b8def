// Package kamailio writes the config of Kamailio 5.6 as the third-party
// registrar and stateful proxy that the interop tests and the benchmark
// run beside ours: registrar and usrloc in memory, passwords in an
// in-memory htable, MD5 digest with qop=auth, Record-Route on calls.
package kamailio

import (
	"fmt"
	"slices"
	"strings"
)

// Config says how Kamailio runs.
type Config struct {
	Port    int // UDP and TCP, on 127.0.0.1
	Workers int // UDP worker processes; with more than one, a 180 can overtake its 200
	// Auth challenges REGISTER (401), and INVITE and MESSAGE from local
	// users (407).
	Auth bool
	// MaxBuffer is the UDP receive buffer Kamailio probes up to; 0 keeps
	// its default.
	MaxBuffer int
	Users     map[string]string // name to password
}

// ModulePath is where Debian's package puts the modules.
const ModulePath = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

// String is the config file. There is no alias for 127.0.0.1: on
// loopback it would make every phone's Contact "myself", and in-dialog
// requests would loop back into Kamailio.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("#!KAMAILIO\n")
	if c.Auth {
		b.WriteString("#!define WITH_AUTH\n")
	}
	fmt.Fprintf(&b, "debug=1\nlog_stderror=yes\nchildren=%d\nlisten=udp:127.0.0.1:%[2]d\nlisten=tcp:127.0.0.1:%[2]d\nauto_aliases=no\n",
		max(c.Workers, 1), c.Port)
	if c.MaxBuffer > 0 {
		fmt.Fprintf(&b, "maxbuffer=%d\n", c.MaxBuffer)
	}
	fmt.Fprintf(&b, "mpath=%q\n", ModulePath)
	for _, m := range []string{"tm", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "usrloc", "registrar", "htable", "auth"} {
		fmt.Fprintf(&b, "loadmodule \"%s.so\"\n", m)
	}
	b.WriteString(`modparam("htable", "htable", "users=>size=16;")
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "hash_size", 14)
modparam("registrar", "max_expires", 7200)

event_route[htable:mod-init] {
`)
	names := make([]string, 0, len(c.Users))
	for n := range c.Users {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "\t$sht(users=>%s) = %q;\n", n, c.Users[n])
	}
	b.WriteString("}\n" + route)
	return b.String()
}

const route = `
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
