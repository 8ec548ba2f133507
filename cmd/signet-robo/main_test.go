package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testpki"
	rabbitmqtest "github.com/signet-project/signet/rabbitmq-test"
)

// files writes a client configuration (a CA and a client certificate), a passphrase
// file and a signet-robo configuration with extra lines; it returns the
// latter's path.
func files(t *testing.T, amqpURL, extra string) string {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.New(t, "test CA")
	c := ca.MustIssue(t, testpki.Leaf{CN: "robo", EKU: testpki.Client})
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile, cert := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "robo.pem")
	if err := ca.WriteCert(caFile); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(cert, filepath.Join(dir, "robo-key.pem")); err != nil {
		t.Fatal(err)
	}
	write("client.toml", []byte(fmt.Sprintf("bridge-hostname = \"localhost\"\nbridge-port = 1\nserver-hostname = \"server\"\nuser-name = \"robo\"\nca-file = %q\nclient-cert-file = %q\nclient-key-file = \"robo-key.pem\"\n", caFile, cert)))
	pass := write("pass", []byte("secret passphrase\n"))
	return write("robo.toml", []byte(fmt.Sprintf(`client_config = %q
%s
[amqp]
url = %q
queue = "cmd-test"
[xml_sign]
enabled = true
routing_keys = ["org.signet.test.request.xml-sign"]
key = "k"
passphrase_file = %q
`, filepath.Join(dir, "client.toml"), extra, amqpURL, pass)))
}

func execute(ctx context.Context, args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestCheckConfig(t *testing.T) {
	cfg := files(t, "amqp://guest:guest@127.0.0.1:1/", `metrics_listen = "127.0.0.1:0"`)
	if out, err := execute(context.Background(), "--config", cfg, "check-config"); err != nil || !strings.Contains(out, "configuration OK") {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	cfg = files(t, "amqp://guest:guest@127.0.0.1:1/", `metrics_listen = "0.0.0.0:9336"`)
	if _, err := execute(context.Background(), "--config", cfg, "check-config"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("check-config accepted a metrics endpoint on every interface: %v", err)
	}
	cfg = files(t, "http://example.org/", "")
	if _, err := execute(context.Background(), "--config", cfg, "check-config"); err == nil {
		t.Fatal("check-config accepted an http:// broker URL")
	}
}

// TestRunStops runs signet-robo against a real broker: it declares its
// queues, and returns nil once its context (SIGTERM, SIGINT in main) is
// cancelled.
func TestRunStops(t *testing.T) {
	b := rabbitmqtest.Start(t)
	cfg := files(t, b.URL(), "")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := execute(ctx, "--config", cfg, "run"); errc <- err }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		q, err := b.Queues()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := q["cmd-test"]; ok {
			if _, ok := q["cmd-test.retry"]; ok {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("signet-robo did not declare its queues within 20 s: %v", q)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10 s of cancellation")
	}
}

// TestUnknownKeys: a misspelt key is refused with the file, the key and
// the closest known key, instead of silently falling back to the default.
func TestUnknownKeys(t *testing.T) {
	for extra, want := range map[string]string{
		`metrics_lisen = "127.0.0.1:0"`:         `unknown key "metrics_lisen" (did you mean "metrics_listen"?)`,
		"[artifacts_sign]\nallowed_source = []": `unknown key "artifacts_sign.allowed_source" (did you mean "artifacts_sign.allowed_sources"?)`,
		"[amqp.tls]\nexternel = true":           `unknown key "amqp.tls.externel" (did you mean "amqp.tls.external"?)`,
	} {
		cfg := files(t, "amqp://guest:guest@127.0.0.1:1/", extra)
		_, err := execute(context.Background(), "--config", cfg, "check-config")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), cfg) {
			t.Errorf("%q: got %v, want an error naming %s and %q", extra, err, cfg, want)
		}
	}
}
