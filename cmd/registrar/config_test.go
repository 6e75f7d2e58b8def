package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../configs/registrar*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := loadConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			if c.Listen.UDP == "" || len(c.Users) == 0 || c.Domain == "" {
				t.Fatalf("sample %s is missing listen, users or domain: %+v", f, c)
			}
			if !c.loopbackOnly() {
				t.Errorf("sample %s listens beyond loopback", f)
			}
		})
	}
}

func TestConfigErrorsNameTheKeyAndFile(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{name: "an unknown key is named", yaml: "domain: x\nlisten:\n  udpp: 127.0.0.1:5060\n", want: "udpp"},
		{name: "an unknown top-level key is named", yaml: "domian: x\n", want: "domian"},
		{name: "a bad listen address is named", yaml: "listen:\n  udp: nowhere\n", want: "listen.udp"},
		{name: "TLS without a certificate is refused", yaml: "listen:\n  tls: 127.0.0.1:5061\n", want: "listen.tls"},
		{name: "expiry bounds must be ordered", yaml: "expires:\n  min: 100\n  default: 50\n", want: "expires"},
		{name: "a user needs a secret", yaml: "users:\n  carol: {}\n", want: "users.carol"},
		{name: "a bad store is named", yaml: "store: mysql\n", want: "store"},
		{name: "a bad log format is named", yaml: "log:\n  format: xml\n", want: "log.format"},
		{name: "a wrong type is reported", yaml: "max_contacts: many\n", want: "max_contacts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "reg.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path)
			if err == nil {
				t.Fatal("config accepted")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q names neither %q nor the file", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig([]byte("users:\n  alice: {password: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.UDP != "127.0.0.1:5060" || c.Domain != "127.0.0.1" || c.Expires.Default != 3600 || c.Store != "bolt" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestSampleCredentialsOffLoopbackAreNoticed(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		warn bool
	}{
		{"the sample on loopback is quiet", "users:\n  alice: {password: alice-secret}\n", false},
		{"the sample on all interfaces warns", "listen:\n  udp: 0.0.0.0:5060\nusers:\n  alice: {password: alice-secret}\n", true},
		{"a real password on a LAN address is quiet", "listen:\n  udp: 192.0.2.10:5060\nusers:\n  alice: {password: s3cret-and-long}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.sampleCredentials() && !c.loopbackOnly(); got != tt.warn {
				t.Fatalf("warn = %v, want %v", got, tt.warn)
			}
		})
	}
}
