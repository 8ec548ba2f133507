package robo

import (
	"strings"
	"testing"
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
