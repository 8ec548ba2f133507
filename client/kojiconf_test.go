package client_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/client"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The [koji] table: an instance by Koji client configuration file (read
// over /etc/koji.conf, whose place the test takes), one by its settings,
// the default configuration, and the errors Sigul's client gives.
func TestKojiConfig(t *testing.T) {
	dir := t.TempDir()
	old := client.SystemKojiConfig
	client.SystemKojiConfig = filepath.Join(dir, "etc-koji.conf")
	t.Cleanup(func() { client.SystemKojiConfig = old })
	writeFile(t, client.SystemKojiConfig, "[koji]\nserver = http://system.example.org/kojihub\ntopurl = http://system.example.org/kojifiles\n")
	writeFile(t, filepath.Join(dir, "fedora.conf"), "[koji]\nserver = https://koji.example.org/kojihub\nserverca = ca.pem\nauthtype = ssl\n")
	writeFile(t, filepath.Join(dir, "default.conf"), "[koji]\ntopurl = http://default.example.org/kojifiles\n")
	writeFile(t, filepath.Join(dir, "notopurl.conf"), "[koji]\nserver = https://x.example.org/kojihub\n")
	conf := filepath.Join(dir, "c.toml")
	writeFile(t, conf, `bridge-hostname = "b"
server-hostname = "s"
[koji]
koji-config = "default.conf"
[koji.instances.fedora]
koji-config = "fedora.conf"
[koji.instances.inline]
server = "https://inline.example.org/kojihub"
topurl = "https://inline.example.org/kojifiles"
serverca = "inline-ca.pem"
[koji.instances.bad]
koji-config = "notopurl.conf"
`)
	cfg, err := client.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Koji.InstanceNames(), " "); got != "bad fedora inline" {
		t.Fatalf("instances %q", got)
	}
	for _, c := range []struct {
		name string
		want client.KojiInstance
	}{
		{"fedora", client.KojiInstance{KojiConfig: filepath.Join(dir, "fedora.conf"), Server: "https://koji.example.org/kojihub",
			TopURL: "http://system.example.org/kojifiles", ServerCA: filepath.Join(dir, "ca.pem")}},
		{"inline", client.KojiInstance{Server: "https://inline.example.org/kojihub", TopURL: "https://inline.example.org/kojifiles",
			ServerCA: filepath.Join(dir, "inline-ca.pem")}},
		{"", client.KojiInstance{KojiConfig: filepath.Join(dir, "default.conf"), Server: "http://system.example.org/kojihub",
			TopURL: "http://default.example.org/kojifiles"}},
	} {
		got, err := cfg.Koji.Resolve(c.name)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("Resolve(%q) = %+v, want %+v", c.name, got, c.want)
		}
	}
	// /etc/koji.conf's topurl completes notopurl.conf; without it, topurl
	// is missing.
	if got, err := cfg.Koji.Resolve("bad"); err != nil || got.TopURL != "http://system.example.org/kojifiles" {
		t.Errorf("Resolve(bad) = %+v, %v; want topurl from /etc/koji.conf", got, err)
	}
	os.Remove(client.SystemKojiConfig)
	if _, err := cfg.Koji.Resolve("bad"); err == nil || !strings.Contains(err.Error(), "Koji instance bad: missing koji configuration option topurl") {
		t.Errorf("Resolve(bad) without /etc/koji.conf = %v", err)
	}
	if _, err := cfg.Koji.Resolve("missing"); err == nil || !strings.Contains(err.Error(), `no Koji instance "missing" in the configuration (bad, fedora, inline are configured`) {
		t.Errorf("Resolve(missing) = %v", err)
	}
}

// Sigul's [koji] section: koji-config and koji-config-NAME for each name
// in koji-instances.
func TestSigulKojiConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c, err := client.ParseSigulConfig([]byte("[client]\nbridge-hostname: b\nserver-hostname: s\n[koji]\nkoji-config: ~/k.conf\nkoji-instances: one  two\nkoji-config-one: /etc/one.conf\nkoji-config-two: ~/two.conf\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Koji.KojiConfig != filepath.Join(home, "k.conf") || len(c.Koji.Instances) != 2 ||
		c.Koji.Instances["one"].KojiConfig != "/etc/one.conf" || c.Koji.Instances["two"].KojiConfig != filepath.Join(home, "two.conf") {
		t.Fatalf("koji section read as %+v", c.Koji)
	}
	if _, err := client.ParseSigulConfig([]byte("[client]\nbridge-hostname: b\nserver-hostname: s\n[koji]\nkoji-instances: one\n")); err == nil ||
		!strings.Contains(err.Error(), "koji-config-one is not set") {
		t.Fatalf("an instance without its file: %v", err)
	}
}

func TestLooksLikeNVRA(t *testing.T) {
	for s, want := range map[string]bool{
		"zlib-1.2.8-10.fc24.i686":        true,
		"python3-foo-1.0-1.fc40.noarch":  true,
		"foo-1.0-1.src":                  true,
		"foo-1.0.x86_64":                 false,
		"foo-1.0-1":                      false, // arch "0-1", then "foo-1" is not N-V-R
		"in/foo-1.0-1.x86_64":            false,
		"foo--1.x86_64":                  false,
		"-1.0-1.x86_64":                  false,
		"foo-1.0-.x86_64":                false,
		"foo-1.0-1.":                     false,
		"zlib-1.2.8-10.fc24.i686 extra":  false,
		"kernel-6.1.0-1.fc40.x86_64.rpm": true,
	} {
		if got := client.LooksLikeNVRA(s); got != want {
			t.Errorf("LooksLikeNVRA(%q) = %v, want %v", s, got, want)
		}
	}
}
