package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSamplePhoneConfigsLoad(t *testing.T) {
	for _, f := range []string{"../../configs/alice.yaml", "../../configs/bob.yaml"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := loadConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			if c.User == "" || c.Password == "" || c.Registrar != "127.0.0.1:5060" {
				t.Fatalf("sample %s: %+v", f, c)
			}
		})
	}
}

func TestPhoneConfigErrorsNameTheKeyAndFile(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"an unknown key is named", "user: a\ndomain: x\nregistrar: 127.0.0.1:5060\npasword: x\n", "pasword"},
		{"a missing registrar is named", "user: a\ndomain: x\n", "registrar"},
		{"a bad transport is named", "user: a\ndomain: x\nregistrar: 127.0.0.1:5060\ntransport: sctp\n", "transport"},
		{"a bad codec is named", "user: a\ndomain: x\nregistrar: 127.0.0.1:5060\ncodecs: [opus]\n", "codecs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "phone.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want it to name %q and the file", err, tt.want)
			}
		})
	}
}
