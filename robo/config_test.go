package robo

import (
	"fmt"
	"strings"
	"testing"

	"github.com/signet-project/signet/client"
)

// FuzzLoadConfig feeds arbitrary files to signet-robo's configuration
// loader: an error or a checked configuration, never a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(`client_config = "c.toml"
[amqp]
url = "amqp://guest:guest@127.0.0.1/"
retry_delay = "1s"
[xml_sign]
enabled = true
routing_keys = ["a.b"]
key = "k"
passphrase_file = "p"
`))
	f.Add([]byte("[packages]\nenabled = true\nrouting_keys = [\"#\"]\n[[packages.keys]]\nname = \"k\"\npassphrase_file = \"p\"\n"))
	f.Add([]byte("[amqp]\nurl = \"amqps://h/\"\n[amqp.tls]\nexternel = true\n"))
	f.Add([]byte("[artifacts_sign]\nallowed_sources = [\"file:///srv/builds/\", \"https://builds.example.org/\"]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := LoadConfig(strings.NewReader(string(b)), "fuzz.toml")
		if err != nil {
			return
		}
		if c.AMQP.URL == "" || c.AMQP.Prefetch < c.AMQP.Concurrency || c.AMQP.retryDelay <= 0 {
			t.Fatalf("accepted an unchecked configuration: %+v", c.AMQP)
		}
	})
}

// TestConfigBridges: bridges replaces the client configuration's bridges;
// an entry that is not host or host:port is refused by name.
func TestConfigBridges(t *testing.T) {
	base := "client_config = \"c.toml\"\n%s[amqp]\nurl = \"amqp://127.0.0.1/\"\n" +
		"[xml_sign]\nenabled = true\nrouting_keys = [\"a.b\"]\nkey = \"k\"\npassphrase_file = \"p\"\n"
	c, err := LoadConfig(strings.NewReader(fmt.Sprintf(base, "bridges = [\"b1.example\", \"b2.example:4000\"]\n")), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	cc := &client.Config{BridgeHost: "old.example", BridgePort: 44334}
	c.ApplyBridges(cc)
	got, err := cc.BridgeAddrs()
	if err != nil || len(got) != 2 || got[0].String() != "b1.example:44334" || got[1].String() != "b2.example:4000" {
		t.Fatalf("bridges = %v, %v", got, err)
	}
	c, err = LoadConfig(strings.NewReader(fmt.Sprintf(base, "")), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	cc = &client.Config{BridgeHost: "old.example", BridgePort: 44334}
	c.ApplyBridges(cc)
	if got, _ := cc.BridgeAddrs(); len(got) != 1 || got[0].String() != "old.example:44334" {
		t.Fatalf("without bridges: %v", got)
	}
	_, err = LoadConfig(strings.NewReader(fmt.Sprintf(base, "bridges = [\"b1.example:0\"]\n")), "t.toml")
	if err == nil || !strings.Contains(err.Error(), "b1.example:0") {
		t.Fatalf("bad port: %v", err)
	}
}
