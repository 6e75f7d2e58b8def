package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the phone's YAML configuration; configs/alice.yaml documents it.
type Config struct {
	User      string   `yaml:"user"`
	Password  string   `yaml:"password"`
	Domain    string   `yaml:"domain"`
	Registrar string   `yaml:"registrar"`
	Transport string   `yaml:"transport"`
	Listen    string   `yaml:"listen"`
	Expires   int      `yaml:"expires"`
	Keepalive int      `yaml:"keepalive"`
	Codecs    []string `yaml:"codecs"`
	TLSCA     string   `yaml:"tls_ca"`
	Log       struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
}

func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *Config) validate() error {
	if c.Transport == "" {
		c.Transport = "udp"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.Keepalive < 0 {
		return fmt.Errorf("keepalive: %d: want seconds, 0 for the default", c.Keepalive)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	switch {
	case c.User == "":
		return fmt.Errorf("user: missing")
	case c.Domain == "":
		return fmt.Errorf("domain: missing")
	case c.Registrar == "":
		return fmt.Errorf("registrar: missing")
	}
	if _, _, err := net.SplitHostPort(c.Registrar); err != nil {
		return fmt.Errorf("registrar: %q: %w", c.Registrar, err)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q: %w", c.Listen, err)
	}
	switch strings.ToLower(c.Transport) {
	case "udp", "tcp", "tls":
	default:
		return fmt.Errorf("transport: %q: want udp, tcp or tls", c.Transport)
	}
	for _, codec := range c.Codecs {
		switch strings.ToUpper(codec) {
		case "PCMU", "PCMA":
		default:
			return fmt.Errorf("codecs: %q: want PCMU or PCMA", codec)
		}
	}
	return nil
}
