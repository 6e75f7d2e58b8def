package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the registrar's YAML configuration. configs/registrar.yaml
// documents every key.
type Config struct {
	Listen struct {
		UDP string `yaml:"udp"`
		TCP string `yaml:"tcp"`
		TLS string `yaml:"tls"`
	} `yaml:"listen"`
	TLS struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	Advertise   string   `yaml:"advertise"`
	Domain      string   `yaml:"domain"`
	Aliases     []string `yaml:"aliases"`
	Store       string   `yaml:"store"`
	DataDir     string   `yaml:"data_dir"`
	MaxContacts int      `yaml:"max_contacts"`
	Expires     struct {
		Default int `yaml:"default"`
		Min     int `yaml:"min"`
		Max     int `yaml:"max"`
	} `yaml:"expires"`
	Auth struct {
		Algorithms []string `yaml:"algorithms"`
		NonceTTL   int      `yaml:"nonce_ttl"`
		Secret     string   `yaml:"secret"`
		// Disabled turns digest auth off: anyone may register any user.
		Disabled bool `yaml:"disabled"`
		// SingleChallengeAgents: User-Agents that get only the first
		// challenge; unset means baresip's default, [] means none.
		SingleChallengeAgents []string `yaml:"single_challenge_agents"`
	} `yaml:"auth"`
	Users map[string]UserConfig `yaml:"users"`
	Log   struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
	Admin struct {
		Listen string `yaml:"listen"`
	} `yaml:"admin"`
}

// UserConfig is one account: a password or precomputed HA1s.
type UserConfig struct {
	Password  string `yaml:"password"`
	HA1       string `yaml:"ha1"`
	HA1SHA256 string `yaml:"ha1_sha256"`
}

// ErrConfig prefixes configuration errors.
var ErrConfig = errors.New("config")

// loadConfig reads path strictly: an unknown key is an error naming it.
func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrConfig, path, err)
	}
	return c, nil
}

func parseConfig(data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, nameKeys(data, err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// nameKeys adds the key path to yaml's "line N: ..." errors, which name
// only the line when a value has the wrong type.
func nameKeys(data []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	msg := err.Error()
	for _, m := range lineRE.FindAllStringSubmatch(msg, -1) {
		line, _ := strconv.Atoi(m[1])
		if key := keyAt(&root, line, ""); key != "" && !strings.Contains(msg, key) {
			msg = strings.Replace(msg, m[0], m[0]+" "+key+":", 1)
		}
	}
	return errors.New(msg)
}

var lineRE = regexp.MustCompile(`line (\d+):`)

// keyAt returns the dotted path of the mapping key on line.
func keyAt(n *yaml.Node, line int, path string) string {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return keyAt(n.Content[0], line, path)
	}
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if k.Line == line {
			return p
		}
		if found := keyAt(v, line, p); found != "" {
			return found
		}
	}
	return ""
}

func (c *Config) applyDefaults() {
	if c.Listen.UDP == "" && c.Listen.TCP == "" && c.Listen.TLS == "" {
		c.Listen.UDP, c.Listen.TCP = "127.0.0.1:5060", "127.0.0.1:5060"
	}
	if c.Store == "" {
		c.Store = "bolt"
	}
	if c.DataDir == "" {
		c.DataDir = "data/registrar"
	}
	if c.MaxContacts == 0 {
		c.MaxContacts = 10
	}
	if c.Expires.Default == 0 {
		c.Expires.Default = 3600
	}
	if c.Expires.Min == 0 {
		c.Expires.Min = 60
	}
	if c.Expires.Max == 0 {
		c.Expires.Max = 7200
	}
	if len(c.Auth.Algorithms) == 0 {
		c.Auth.Algorithms = []string{"MD5", "SHA-256"}
	}
	if c.Auth.NonceTTL == 0 {
		c.Auth.NonceTTL = 300
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Domain == "" {
		c.Domain = c.advertiseHost()
	}
}

// Validate reports the first key whose value cannot work.
func (c *Config) Validate() error {
	for key, addr := range map[string]string{"listen.udp": c.Listen.UDP, "listen.tcp": c.Listen.TCP, "listen.tls": c.Listen.TLS, "admin.listen": c.Admin.Listen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: %q: %w", key, addr, err)
		}
	}
	if c.Listen.TLS != "" && (c.TLS.Cert == "" || c.TLS.Key == "") {
		return fmt.Errorf("listen.tls: %q needs tls.cert and tls.key", c.Listen.TLS)
	}
	switch c.Store {
	case "bolt", "memory":
	default:
		return fmt.Errorf("store: %q: want bolt or memory", c.Store)
	}
	if c.Expires.Min < 1 || c.Expires.Default < c.Expires.Min || c.Expires.Max < c.Expires.Default {
		return fmt.Errorf("expires: need 1 <= min (%d) <= default (%d) <= max (%d)", c.Expires.Min, c.Expires.Default, c.Expires.Max)
	}
	if c.MaxContacts < 1 {
		return fmt.Errorf("max_contacts: %d: want at least 1", c.MaxContacts)
	}
	if c.Auth.NonceTTL < 1 {
		return fmt.Errorf("auth.nonce_ttl: %d: want at least 1", c.Auth.NonceTTL)
	}
	if c.Auth.Secret != "" && len(c.Auth.Secret) < 16 {
		return fmt.Errorf("auth.secret: want at least 16 characters")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: %q: want text or json", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q: want debug, info, warn or error", c.Log.Level)
	}
	for name, u := range c.Users {
		if name == "" || strings.ContainsAny(name, "@:;<> \t") {
			return fmt.Errorf("users: %q: not a valid SIP user name", name)
		}
		if u.Password == "" && u.HA1 == "" && u.HA1SHA256 == "" {
			return fmt.Errorf("users.%s: needs password, ha1 or ha1_sha256", name)
		}
	}
	return nil
}

// advertiseHost is the host we put in Via and Record-Route.
func (c *Config) advertiseHost() string {
	if c.Advertise != "" {
		if h, _, err := net.SplitHostPort(c.Advertise); err == nil {
			return h
		}
		return c.Advertise
	}
	for _, a := range []string{c.Listen.UDP, c.Listen.TCP, c.Listen.TLS} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				return h
			}
			return firstInterfaceIP()
		}
	}
	return "127.0.0.1"
}

// sampleCredentials reports whether a sample user with its sample password
// is configured.
func (c *Config) sampleCredentials() bool {
	return c.Users["alice"].Password == "alice-secret" || c.Users["bob"].Password == "bob-secret"
}

// loopbackOnly reports whether every SIP listener is on loopback.
func (c *Config) loopbackOnly() bool {
	for _, a := range []string{c.Listen.UDP, c.Listen.TCP, c.Listen.TLS} {
		if a == "" {
			continue
		}
		h, _, _ := net.SplitHostPort(a)
		ip := net.ParseIP(h)
		if h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}

func firstInterfaceIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
