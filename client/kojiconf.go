package client

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// KojiConfig is the [koji] table of signet's client configuration: where
// packages named by N-V-R.A instead of a file are looked up (sign-rpm and
// sign-rpms, §7.10). It is Sigul's [koji] section: an instance named with
// -k is looked up in Instances, and without -k the Koji client
// configuration KojiConfig is used.
//
//	[koji]
//	koji-config = "~/.koji/config"       # without -k (this is the default)
//	[koji.instances.fedora]
//	koji-config = "/etc/koji.conf.d/fedora.conf"
//	[koji.instances.stg]                  # or the settings themselves
//	server = "https://koji.stg.example.org/kojihub"
//	topurl = "https://kojipkgs.stg.example.org"
//	serverca = "koji-ca.pem"
type KojiConfig struct {
	// KojiConfig is the Koji client configuration (INI, its [koji]
	// section) used without -k, read over /etc/koji.conf as Sigul does.
	// Default ~/.koji/config.
	KojiConfig string `toml:"koji-config"`
	// Instances are the instances -k may name.
	Instances map[string]KojiInstance `toml:"instances"`
}

// KojiInstance is one Koji instance: either KojiConfig, a Koji client
// configuration file whose [koji] section gives server, topurl and
// serverca (Sigul's koji-config-NAME), or those settings here. Settings
// given here win over the file's.
type KojiInstance struct {
	KojiConfig string `toml:"koji-config"`
	// Server is the hub's XML-RPC URL (Koji's server).
	Server string `toml:"server"`
	// TopURL is where Koji's files are served (Koji's topurl). The client
	// does not fetch from it (the bridge does), but Sigul requires it.
	TopURL string `toml:"topurl"`
	// ServerCA is a PEM file of the CA that issued an https hub's
	// certificate (Koji's serverca); default the system's.
	ServerCA string `toml:"serverca"`
}

// empty reports whether the table was left out.
func (k KojiConfig) empty() bool { return k.KojiConfig == "" && len(k.Instances) == 0 }

// resolvePaths makes the table's file names absolute: "~" is the home
// directory, and a relative name is taken relative to dir (the directory
// of the configuration file that names it).
func (k *KojiConfig) resolvePaths(dir string) error {
	var err error
	if k.KojiConfig, err = expandPath(k.KojiConfig, dir); err != nil {
		return err
	}
	for name, inst := range k.Instances {
		if inst.KojiConfig, err = expandPath(inst.KojiConfig, dir); err != nil {
			return err
		}
		if inst.ServerCA, err = expandPath(inst.ServerCA, dir); err != nil {
			return err
		}
		k.Instances[name] = inst
	}
	return nil
}

func expandPath(p, dir string) (string, error) {
	switch {
	case p == "":
		return "", nil
	case p == "~" || strings.HasPrefix(p, "~/"):
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
	case filepath.IsAbs(p) || dir == "":
		return p, nil
	}
	return filepath.Join(dir, p), nil
}

// DefaultKojiConfig is the Koji client configuration used without -k when
// the configuration names none: Sigul's default, ~/.koji/config.
func DefaultKojiConfig() string {
	p, err := expandPath("~/.koji/config", "")
	if err != nil {
		return ".koji/config"
	}
	return p
}

// SystemKojiConfig is read before any Koji client configuration file, as
// Sigul's client does (and Koji's own).
var SystemKojiConfig = "/etc/koji.conf"

// InstanceNames returns the names -k may give, sorted.
func (k KojiConfig) InstanceNames() []string {
	var l []string
	for n := range k.Instances {
		l = append(l, n)
	}
	sort.Strings(l)
	return l
}

// Resolve returns the settings of Koji instance name (-k), or of the
// default Koji configuration when name is "". As Sigul's client, it
// requires server and topurl, and reads a configuration file over
// /etc/koji.conf.
func (k KojiConfig) Resolve(name string) (KojiInstance, error) {
	var inst KojiInstance
	if name == "" {
		inst.KojiConfig = k.KojiConfig
		if inst.KojiConfig == "" {
			inst.KojiConfig = DefaultKojiConfig()
		}
	} else {
		var ok bool
		if inst, ok = k.Instances[name]; !ok {
			known := "none is"
			if names := k.InstanceNames(); len(names) > 0 {
				known = strings.Join(names, ", ") + " are"
			}
			return inst, fmt.Errorf("no Koji instance %q in the configuration (%s configured in [koji.instances])", name, known)
		}
	}
	out := inst
	if inst.KojiConfig != "" {
		f, err := ReadKojiClientConfig(inst.KojiConfig)
		if err != nil {
			return inst, err
		}
		for _, kv := range []struct {
			dst *string
			v   string
		}{{&out.Server, f.Server}, {&out.TopURL, f.TopURL}, {&out.ServerCA, f.ServerCA}} {
			if *kv.dst == "" {
				*kv.dst = kv.v
			}
		}
	}
	what := "Koji instance " + name
	if name == "" {
		what = "the default Koji configuration (" + inst.KojiConfig + ")"
	}
	for _, kv := range []struct{ k, v string }{{"server", out.Server}, {"topurl", out.TopURL}} {
		if kv.v == "" {
			return out, fmt.Errorf("%s: missing koji configuration option %s", what, kv.k)
		}
	}
	if u, err := url.Parse(out.Server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return out, fmt.Errorf("%s: server %q is not an http or https URL", what, out.Server)
	}
	return out, nil
}

// ReadKojiClientConfig reads the [koji] section of a Koji client
// configuration (INI) as Sigul's client does: /etc/koji.conf first (if
// present), then path over it; path must exist. serverca and cert have
// "~" expanded; serverca is taken relative to the file's directory when
// relative.
func ReadKojiClientConfig(path string) (KojiInstance, error) {
	inst := KojiInstance{KojiConfig: path}
	sec := map[string]string{}
	files := []string{path}
	if SystemKojiConfig != "" && SystemKojiConfig != path {
		files = []string{SystemKojiConfig, path}
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			if p != path && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return inst, fmt.Errorf("reading the Koji configuration: %w", err)
		}
		f, err := parseINI(b)
		if err != nil {
			return inst, fmt.Errorf("%s: %w", p, err)
		}
		for k, v := range f["koji"] {
			if k == "serverca" {
				if v, err = expandPath(v, filepath.Dir(p)); err != nil {
					return inst, err
				}
			}
			sec[k] = v
		}
	}
	inst.Server, inst.TopURL, inst.ServerCA = sec["server"], sec["topurl"], sec["serverca"]
	return inst, nil
}
