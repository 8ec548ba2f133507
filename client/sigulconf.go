package client

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SigulConfig is what a Sigul 1.2 client configuration (INI, read by
// Python's RawConfigParser) says, with Sigul's defaults filled in.
type SigulConfig struct {
	BridgeHost, ServerHost string
	BridgePort             int
	// UserName is "" when the file does not set it (Sigul then uses the
	// login name, as signet does).
	UserName string
	// CertNickname is the client certificate's nickname in the NSS
	// database (default sigul-client-cert).
	CertNickname string
	// NSSDir is the NSS database directory, "~" expanded (default
	// ~/.sigul).
	NSSDir string
	// NSSPassword is the database password; HasNSSPassword says whether
	// the file sets it (Sigul asks for it otherwise). Empty is a valid
	// password.
	NSSPassword    string
	HasNSSPassword bool
	// MinTLS and MaxTLS are nss-min-tls and nss-max-tls.
	MinTLS, MaxTLS string
	// KojiInstances and BindingsEnabled are [koji] koji-instances and
	// [binding] enabled, as written.
	KojiInstances, BindingsEnabled string
	// Koji is the [koji] section: koji-config (the Koji client
	// configuration used without -k) if set, and for each name in
	// koji-instances its koji-config-NAME, "~" expanded.
	Koji KojiConfig
}

// iniFile is a parsed INI file: section -> key -> value, keys lowercased
// as RawConfigParser does, with [DEFAULT] kept apart.
type iniFile map[string]map[string]string

// parseINI reads INI text as Python's RawConfigParser does by default:
// "[section]" headers, "key = value" or "key: value" (the first '=' or
// ':' ends the key), whole-line '#' and ';' comments, indented lines
// continuing the previous value, no interpolation.
func parseINI(b []byte) (iniFile, error) {
	f := iniFile{}
	var sec map[string]string
	var lastKey string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		trim := strings.TrimSpace(line)
		switch {
		case trim == "" || trim[0] == '#' || trim[0] == ';':
			continue
		case line[0] == ' ' || line[0] == '\t':
			if sec == nil || lastKey == "" {
				return nil, fmt.Errorf("line %d: indented line outside a value", n)
			}
			if sec[lastKey] == "" {
				sec[lastKey] = trim
			} else {
				sec[lastKey] += "\n" + trim
			}
			continue
		case trim[0] == '[':
			if !strings.HasSuffix(trim, "]") {
				return nil, fmt.Errorf("line %d: malformed section header %q", n, trim)
			}
			name := trim[1 : len(trim)-1]
			if f[name] == nil {
				f[name] = map[string]string{}
			}
			sec, lastKey = f[name], ""
			continue
		}
		if sec == nil {
			return nil, fmt.Errorf("line %d: a setting before any [section]", n)
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return nil, fmt.Errorf("line %d: %q is not key = value", n, trim)
		}
		lastKey = strings.ToLower(strings.TrimSpace(line[:i]))
		sec[lastKey] = strings.TrimSpace(line[i+1:])
	}
	return f, sc.Err()
}

// get returns section's key, falling back to [DEFAULT].
func (f iniFile) get(section, key string) (string, bool) {
	if v, ok := f[section][key]; ok {
		return v, true
	}
	v, ok := f["DEFAULT"][key]
	return v, ok
}

// LooksLikeSigulConfig reports whether b is a Sigul INI client
// configuration rather than signet's TOML: it parses as INI and has
// Sigul's [client] settings in INI form (TOML would quote the strings).
func LooksLikeSigulConfig(b []byte) bool {
	f, err := parseINI(b)
	if err != nil {
		return false
	}
	for _, k := range []string{"bridge-hostname", "server-hostname", "client-cert-nickname"} {
		if v, ok := f.get("client", k); ok && !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, `'`) {
			return true
		}
	}
	_, nss := f["nss"]
	return nss
}

// ParseSigulConfig reads a Sigul 1.2 client configuration.
func ParseSigulConfig(b []byte) (*SigulConfig, error) {
	f, err := parseINI(b)
	if err != nil {
		return nil, err
	}
	get := func(sec, key, def string) string {
		if v, ok := f.get(sec, key); ok {
			return v
		}
		return def
	}
	c := &SigulConfig{
		BridgeHost:      get("client", "bridge-hostname", ""),
		ServerHost:      get("client", "server-hostname", ""),
		UserName:        get("client", "user-name", ""),
		CertNickname:    get("client", "client-cert-nickname", "sigul-client-cert"),
		NSSDir:          get("nss", "nss-dir", "~/.sigul"),
		MinTLS:          get("nss", "nss-min-tls", "tls1.2"),
		MaxTLS:          get("nss", "nss-max-tls", "tls1.2"),
		KojiInstances:   get("koji", "koji-instances", ""),
		BindingsEnabled: get("binding", "enabled", ""),
	}
	c.NSSPassword, c.HasNSSPassword = f.get("nss", "nss-password")
	if v, ok := f.get("koji", "koji-config"); ok && v != "" {
		if c.Koji.KojiConfig, err = expandPath(v, ""); err != nil {
			return nil, err
		}
	}
	for _, name := range strings.Fields(c.KojiInstances) {
		v, ok := f.get("koji", "koji-config-"+name)
		if !ok || v == "" {
			return nil, fmt.Errorf("[koji] koji-instances names %s, but koji-config-%s is not set", name, name)
		}
		if c.Koji.Instances == nil {
			c.Koji.Instances = map[string]KojiInstance{}
		}
		p, err := expandPath(v, "")
		if err != nil {
			return nil, err
		}
		c.Koji.Instances[name] = KojiInstance{KojiConfig: p}
	}
	port := get("client", "bridge-port", strconv.Itoa(DefaultBridgePort))
	if c.BridgePort, err = strconv.Atoi(port); err != nil || c.BridgePort <= 0 || c.BridgePort > 65535 {
		return nil, fmt.Errorf("[client] bridge-port %q is not a port number", port)
	}
	switch {
	case c.BridgeHost == "":
		return nil, fmt.Errorf("[client] bridge-hostname is not set")
	case c.ServerHost == "":
		return nil, fmt.Errorf("[client] server-hostname is not set")
	}
	if strings.HasPrefix(c.NSSDir, "~/") || c.NSSDir == "~" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, err
		}
		c.NSSDir = filepath.Join(home, strings.TrimPrefix(c.NSSDir, "~"))
	}
	return c, nil
}
