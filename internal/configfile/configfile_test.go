package configfile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

type testConfig struct {
	Database string `mapstructure:"database"`
	Server   struct {
		MaxFilePayload       int64    `mapstructure:"max_file_payload"`
		LenientUsernameCheck bool     `mapstructure:"lenient_username_check"`
		ProxyUsernames       []string `mapstructure:"proxy_usernames"`
	} `mapstructure:"server"`
	Bridge []struct {
		Address string `mapstructure:"address"`
		Idle    int    `mapstructure:"idle"`
	} `mapstructure:"bridge"`
	Limits map[string]int64 `mapstructure:"limits"`
	//lint:ignore U1000 a key named after an unexported field must still be refused
	hidden string
}

func read(t *testing.T, toml string) (*testConfig, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "role.toml")
	if err := os.WriteFile(p, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	var c testConfig
	err := ReadFile(viper.New(), p, &c)
	return &c, err
}

func TestReadKnownKeys(t *testing.T) {
	c, err := read(t, `database = "x.db"
[server]
max_file_payload = 1024
lenient_username_check = true
proxy_usernames = ["robo"]
[[bridge]]
address = "a:1"
idle = 2
[[bridge]]
address = "b:1"
[limits]
sign-data = 10
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database != "x.db" || c.Server.MaxFilePayload != 1024 || !c.Server.LenientUsernameCheck ||
		len(c.Server.ProxyUsernames) != 1 || len(c.Bridge) != 2 || c.Bridge[0].Idle != 2 || c.Bridge[1].Address != "b:1" ||
		c.Limits["sign-data"] != 10 {
		t.Fatalf("decoded %+v", c)
	}
}

func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		name, toml, key, closest string
	}{
		{"misspelt lenient_username_check", "[server]\nlenient_usename_check = true\n", "server.lenient_usename_check", "server.lenient_username_check"},
		{"misspelt max_file_payload", "[server]\nmax_file_paylod = 10\n", "server.max_file_paylod", "server.max_file_payload"},
		{"max_file_payload in the wrong table", "max_file_payload = 10\n", "max_file_payload", "server.max_file_payload"},
		{"unknown table", "[sever]\nmax_file_payload = 10\n", "sever", "server"},
		{"array of tables", "[[bridge]]\naddress = \"a:1\"\nidel = 2\n", "bridge[0].idel", "bridge.idle"},
		{"nothing close", "frobnication_level = 3\n", "frobnication_level", ""},
		{"unexported field", "hidden = \"x\"\n", "hidden", ""},
		{"case does not hide it", "[Server]\nMax_File_Paylod = 1\n", "server.max_file_paylod", "server.max_file_payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := read(t, tc.toml)
			var uk *UnknownKeyError
			if !errors.As(err, &uk) {
				t.Fatalf("err = %v, want an UnknownKeyError", err)
			}
			if len(uk.Keys) != 1 || uk.Keys[0].Key != tc.key || uk.Keys[0].Closest != tc.closest {
				t.Fatalf("keys = %+v, want %q closest %q", uk.Keys, tc.key, tc.closest)
			}
			msg := err.Error()
			if !strings.Contains(msg, "role.toml") || !strings.Contains(msg, tc.key) || (tc.closest != "" && !strings.Contains(msg, "did you mean \""+tc.closest+"\"")) {
				t.Fatalf("message %q does not name the file, the key and the closest key", msg)
			}
		})
	}
}

func TestWrongTypes(t *testing.T) {
	for _, toml := range []string{
		"[server]\nmax_file_payload = \"10\"\n",
		"[server]\nlenient_username_check = \"yes\"\n",
		"database = 3\n",
		"[server]\nproxy_usernames = \"robo\"\n",
	} {
		if _, err := read(t, toml); err == nil {
			t.Errorf("%q: accepted", toml)
		}
	}
}

func TestNotTOML(t *testing.T) {
	if _, err := read(t, "[server\n"); err == nil || !strings.Contains(err.Error(), "reading configuration") {
		t.Fatalf("err = %v", err)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"idle", "idel", 2}, {"héllo", "hello", 1}} {
		if got := distance(tc.a, tc.b); got != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}

// FuzzRead feeds arbitrary files to the strict reader: it returns an
// error or a configuration, never panics, and a file it accepts holds no
// key the struct does not name.
func FuzzRead(f *testing.F) {
	f.Add([]byte("database = \"x\"\n[server]\nmax_file_payload = 1\n[[bridge]]\naddress = \"a\"\n"))
	f.Add([]byte("[server]\nlenient_usename_check = true\n"))
	f.Add([]byte("[limits]\nsign-data = 1\n[[bridge]]\n[bridge.x]\n"))
	f.Add([]byte("a.b.c = 1\n\"quoted.key\" = 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c testConfig
		err := Read(viper.New(), strings.NewReader(string(b)), "fuzz.toml", &c)
		if err != nil {
			return
		}
		v := viper.New()
		v.SetConfigType("toml")
		if v.ReadConfig(strings.NewReader(string(b))) != nil {
			t.Fatal("accepted a file viper cannot read")
		}
		known := map[string]bool{}
		for _, k := range KnownKeys(reflectType()) {
			known[k] = true
		}
		for _, k := range v.AllKeys() {
			if known[k] {
				continue
			}
			if strings.HasPrefix(k, "limits.") || strings.HasPrefix(k, "bridge.") {
				continue // data keys; array elements
			}
			t.Fatalf("accepted unknown key %q", k)
		}
	})
}

func reflectType() reflect.Type { return reflect.TypeOf(&testConfig{}) }
