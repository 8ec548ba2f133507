package client

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// DefaultBridgePort is Sigul's client port on the bridge (PROTOCOL-v1 §1.1).
const DefaultBridgePort = 44334

// Config is what the client needs to reach a bridge and the server behind
// it. It is Sigul's [client] section, with PEM files in place of an NSS
// database.
type Config struct {
	// BridgeHost is the bridge's host name; the bridge's certificate is
	// checked against it (outer TLS session).
	BridgeHost string `toml:"bridge-hostname"`
	// BridgePort is the bridge's client port (default 44334).
	BridgePort int `toml:"bridge-port"`
	// Bridges lists further bridges, "host" or "host:port" (the port
	// defaults to BridgePort). The client tries bridge-hostname first, if
	// set, then these in order, and moves to the next when one refuses
	// the connection or is down (see Client.Retry).
	Bridges []string `toml:"bridges"`
	// ServerHost is the server's host name; the server's certificate is
	// checked against it in the inner TLS session.
	ServerHost string `toml:"server-hostname"`
	// UserName is the Sigul user name sent in requests (default: the login
	// name; the command line's --user-name overrides it).
	UserName string `toml:"user-name"`
	// CAFile holds the PEM certificate(s) of the CA that issued the bridge's
	// and the server's certificates.
	CAFile string `toml:"ca-file"`
	// CertFile and KeyFile are the client's PEM certificate (chain) and
	// private key. The certificate's CN is the user name the server expects.
	CertFile string `toml:"client-cert-file"`
	KeyFile  string `toml:"client-key-file"`
	// Koji is the [koji] table: the Koji instances in which packages
	// named by N-V-R.A are looked up (see KojiConfig).
	Koji KojiConfig `toml:"koji"`
}

// LoadConfig reads a TOML configuration file. The keys may be at the top
// level or in a [client] table (as in Sigul's client.conf); the table wins.
// Relative file names are taken relative to the configuration file's
// directory. Unknown keys are refused, so that a misspelt key does not go
// unnoticed.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Config
		Client *Config `toml:"client"`
	}
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%s:%d:%d: %v", path, row, col, de)
		}
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return nil, fmt.Errorf("%s: %s", path, sm.String())
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := doc.Config
	if t := doc.Client; t != nil {
		c.merge(t)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.CAFile, &c.CertFile, &c.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if err := c.Koji.resolvePaths(dir); err != nil {
		return nil, fmt.Errorf("%s: [koji]: %w", path, err)
	}
	if c.BridgePort == 0 {
		c.BridgePort = DefaultBridgePort
	}
	return &c, nil
}

func (c *Config) merge(o *Config) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.BridgeHost, o.BridgeHost)
	set(&c.ServerHost, o.ServerHost)
	set(&c.UserName, o.UserName)
	set(&c.CAFile, o.CAFile)
	set(&c.CertFile, o.CertFile)
	set(&c.KeyFile, o.KeyFile)
	if o.BridgePort != 0 {
		c.BridgePort = o.BridgePort
	}
	if len(o.Bridges) > 0 {
		c.Bridges = o.Bridges
	}
	if !o.Koji.empty() {
		c.Koji = o.Koji
	}
}

// BridgeAddrs returns the bridges to try, in order, as host and port:
// bridge-hostname (if set), then Bridges.
func (c *Config) BridgeAddrs() ([]BridgeAddr, error) {
	port := c.BridgePort
	if port == 0 {
		port = DefaultBridgePort
	}
	var list []BridgeAddr
	if c.BridgeHost != "" {
		list = append(list, BridgeAddr{c.BridgeHost, port})
	}
	for _, b := range c.Bridges {
		a := BridgeAddr{Host: b, Port: port}
		if h, p, err := net.SplitHostPort(b); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("client configuration: bridges: %q has no valid port number", b)
			}
			a = BridgeAddr{h, n}
		}
		if a.Host == "" || strings.ContainsAny(a.Host, " /[]") {
			return nil, fmt.Errorf("client configuration: bridges: %q is not a host name or host:port", b)
		}
		list = append(list, a)
	}
	if len(list) == 0 {
		return nil, errors.New("client configuration: bridge-hostname (or bridges) is not set")
	}
	return list, nil
}

// BridgeAddr is one bridge's client endpoint. Host is also the name its
// certificate is checked against.
type BridgeAddr struct {
	Host string
	Port int
}

func (a BridgeAddr) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// Validate reports the first missing or invalid setting.
func (c *Config) Validate() error {
	switch {
	case c.BridgeHost == "" && len(c.Bridges) == 0:
		return errors.New("client configuration: bridge-hostname (or bridges) is not set")
	case c.BridgePort <= 0 || c.BridgePort > 65535:
		return fmt.Errorf("client configuration: bridge-port %d is not a port number", c.BridgePort)
	case c.ServerHost == "":
		return errors.New("client configuration: server-hostname is not set")
	case c.CAFile == "":
		return errors.New("client configuration: ca-file is not set")
	case c.CertFile == "":
		return errors.New("client configuration: client-cert-file is not set")
	case c.KeyFile == "":
		return errors.New("client configuration: client-key-file is not set")
	}
	_, err := c.BridgeAddrs()
	return err
}
