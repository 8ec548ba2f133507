package robo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/internal/secret"
	"github.com/signet-project/signet/internal/testenv"
	rabbitmqtest "github.com/signet-project/signet/rabbitmq-test"
)

// world is what the tests share: a devstack (real signet-bridge and
// signet-server processes, SoftHSM2 behind them) and a private RabbitMQ.
type world struct {
	root, dir string
	env       []string
	broker    *rabbitmqtest.Broker
	client    *client.Client
	passFile  string
}

func newWorld(t testing.TB) *world { t.Helper(); return newWorldEnv(t) }

// newWorldEnv is newWorld with extra environment for devstack.sh (its
// SIGNET_KOJI_* settings).
func newWorldEnv(t testing.TB, env ...string) *world {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{root: root, dir: os.Getenv("SIGNET_DEVSTACK"), env: os.Environ()}
	w.broker = rabbitmqtest.Start(t)
	if w.dir == "" {
		// A devstack of our own; otherwise (the benchmark script) the
		// running one in $SIGNET_DEVSTACK.
		w.dir = t.TempDir()
		ports := testenv.FreePorts(t, 3)
		w.env = append(os.Environ(), "SIGNET_CLIENT_PORT="+strconv.Itoa(ports[0]), "SIGNET_SERVER_PORT="+strconv.Itoa(ports[1]), "SIGNET_METRICS_PORT="+strconv.Itoa(ports[2]))
		w.env = append(w.env, env...)
		w.devstack(t, "up")
		t.Cleanup(func() { w.devstack(t, "down") })
	}
	w.passFile = filepath.Join(w.dir, "secrets/alice-passphrase")
	cfg, err := client.LoadConfig(filepath.Join(w.dir, "alice.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if w.client, err = client.New(cfg); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) devstack(t testing.TB, action string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(w.root, "scripts/devstack.sh"), action, w.dir)
	cmd.Env = w.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("devstack.sh %s: %v\n%s", action, err, out)
	}
}

// publicKey fetches key's armored public key through the service.
func (w *world) publicKey(t testing.TB, key string) []byte {
	t.Helper()
	pass, err := secret.ReadFile(w.passFile, "passphrase")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := w.client.GetPublicKey(context.Background(), client.GetPublicKeyRequest{Key: key, Auth: client.Auth{Passphrase: pass}}, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// stopBridge stops the devstack's bridge (SIGINT, as an operator would).
func (w *world) stopBridge(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, "run/bridge.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	p, _ := os.FindProcess(pid)
	p.Signal(os.Interrupt)
	for i := 0; i < 100 && p.Signal(syscall.Signal(0)) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if p.Signal(syscall.Signal(0)) == nil {
		t.Fatalf("the bridge (pid %d) did not stop within 5 s", pid)
	}
}

// startBridge starts the bridge again with the same configuration.
func (w *world) startBridge(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(w.dir, "log/bridge.log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(w.dir, "bin/signet-bridge"), "--config", filepath.Join(w.dir, "bridge.toml"), "run")
	cmd.Env, cmd.Stdout, cmd.Stderr = w.env, logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(w.dir, "run/bridge.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	go cmd.Wait()
}

// robo is a running consumer under test.
type roboRun struct {
	r      *Robo
	cfg    *Config
	cancel context.CancelFunc
	done   chan error
}

// startRobo writes a configuration file from toml (the AMQP URL and the
// client configuration are added), loads it as signet-robo does and runs
// the consumer until the test ends.
func (w *world) startRobo(t testing.TB, toml string) *roboRun {
	t.Helper()
	path := filepath.Join(t.TempDir(), "robo.toml")
	head := fmt.Sprintf("client_config = %q\nwork_dir = %q\n", filepath.Join(w.dir, "alice.toml"), t.TempDir())
	if !strings.Contains(toml, "\nurl = ") {
		toml = strings.Replace(toml, "[amqp]\n", fmt.Sprintf("[amqp]\nurl = %q\n", w.broker.URL()), 1)
	}
	if err := os.WriteFile(path, []byte(head+toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelInfo
	if _, bench := t.(*testing.B); bench {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	r, err := New(cfg, w.client, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &roboRun{r: r, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	// Wait until it consumes (the queue and bindings exist).
	deadline := time.Now().Add(20 * time.Second)
	for !hasGauge(r, "signet_robo_connected", 1) {
		if time.Now().After(deadline) {
			t.Fatal("signet-robo did not start consuming within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return run
}

func (run *roboRun) stop(t testing.TB) {
	run.cancel()
	select {
	case err := <-run.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("Run did not return within 30 s of cancellation")
	}
	run.done <- nil
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// counter returns the value of a metric with the given labels.
func counter(r *Robo, name string, labels ...string) float64 {
	mfs, _ := r.m.reg.Gather()
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}

func hasGauge(r *Robo, name string, v float64) bool { return counter(r, name) == v }

// peer is the test's own AMQP connection: it publishes requests and
// collects finished messages from a durable queue of its own, so that
// nothing is missed across a broker restart.
type peer struct {
	t     testing.TB
	w     *world
	queue string
	keys  []string

	mu       sync.Mutex
	conn     *amqp.Connection
	ch       *amqp.Channel
	finished []amqp.Delivery
}

func (w *world) newPeer(t testing.TB, queue string, finishedKeys ...string) *peer {
	t.Helper()
	p := &peer{t: t, w: w, queue: queue, keys: finishedKeys}
	p.connect()
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.conn != nil {
			p.conn.Close()
		}
	})
	return p
}

// connect (re)opens the connection and the finished-message consumer.
func (p *peer) connect() {
	p.t.Helper()
	var conn *amqp.Connection
	var err error
	for i := 0; i < 100; i++ {
		if conn, err = amqp.Dial(p.w.broker.URL()); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err == nil {
		_, err = ch.QueueDeclare(p.queue, true, false, false, false, nil)
	}
	for _, k := range p.keys {
		if err == nil {
			err = ch.QueueBind(p.queue, k, "amq.topic", false, nil)
		}
	}
	cch, err2 := conn.Channel()
	var dl <-chan amqp.Delivery
	if err == nil && err2 == nil {
		dl, err = cch.Consume(p.queue, "", true, false, false, false, nil)
	}
	if err != nil || err2 != nil {
		p.t.Fatal(err, err2)
	}
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Close()
	}
	p.conn, p.ch = conn, ch
	p.mu.Unlock()
	go func() {
		for d := range dl {
			p.mu.Lock()
			p.finished = append(p.finished, d)
			p.mu.Unlock()
		}
	}()
}

// msg is one request to publish.
type msg struct {
	key         string
	body        []byte
	contentType string
	id          string
	schema      string
	replyTo     string
}

func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publish sends m with fedora-messaging's headers, persistent, and waits
// for the broker's confirm.
func (p *peer) publish(m msg) {
	p.t.Helper()
	h := amqp.Table{hdrSeverity: int32(20), hdrSentAt: time.Now().UTC().Format(time.RFC3339)}
	if m.schema != "-" {
		h[hdrSchema] = "base.message"
		if m.schema != "" {
			h[hdrSchema] = m.schema
		}
	}
	if m.contentType == "" {
		m.contentType = "application/json"
	}
	if m.id == "" {
		m.id = newUUID()
	} else if m.id == "-" {
		m.id = ""
	}
	p.mu.Lock()
	ch := p.ch
	p.mu.Unlock()
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "amq.topic", m.key, false, false, amqp.Publishing{
		ContentType: m.contentType, MessageId: m.id, DeliveryMode: amqp.Persistent, Headers: h, Body: m.body, ReplyTo: m.replyTo,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	if !dc.Wait() {
		p.t.Fatal("the broker did not confirm a request")
	}
}

// waitFinished waits until n finished messages have arrived (bounded by
// timeout) and returns them decoded.
func (p *peer) waitFinished(n int, timeout time.Duration) []map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		got := len(p.finished)
		p.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%d finished messages within %s, want %d", got, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, d := range p.finished {
		if d.ContentType != "application/json" || d.MessageId == "" || d.Headers[hdrSchema] == nil || d.Headers[hdrSentAt] == nil || d.Headers[hdrSeverity] == nil {
			p.t.Fatalf("a finished message does not follow fedora-messaging's conventions: %+v", d)
		}
		var m map[string]any
		if err := json.Unmarshal(d.Body, &m); err != nil {
			p.t.Fatalf("a finished message is not JSON: %q", d.Body)
		}
		m["_routing_key"] = d.RoutingKey
		m["_correlation_id"] = d.CorrelationId
		out = append(out, m)
	}
	return out
}

// reset forgets the finished messages received so far.
func (p *peer) reset() {
	p.mu.Lock()
	p.finished = nil
	p.mu.Unlock()
}

// queues returns the broker's counts for the queues named.
func (w *world) queues(t testing.TB) map[string]rabbitmqtest.QueueCounts {
	t.Helper()
	q, err := w.broker.Queues()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// waitQueues waits until every queue named holds want ready messages and
// none unacknowledged.
func (w *world) waitQueues(t testing.TB, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		q := w.queues(t)
		ok := true
		for name, n := range want {
			ok = ok && q[name].Ready == n && q[name].Unacked == 0
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queues %v, want ready %v and nothing unacknowledged", q, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// gpgVerifier imports a certificate into a private GnuPG home and checks
// detached signatures with gpg --verify.
type gpgVerifier struct {
	t    testing.TB
	home string
}

func newGPG(t testing.TB, cert []byte) *gpgVerifier {
	t.Helper()
	home, err := os.MkdirTemp("", "robo-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	cmd := exec.Command("gpg", "--batch", "--homedir", home, "--import")
	cmd.Stdin = bytes.NewReader(cert)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	return &gpgVerifier{t, home}
}

func (g *gpgVerifier) verify(sig, data string) {
	g.t.Helper()
	out, err := exec.Command("gpg", "--batch", "--homedir", g.home, "--verify", sig, data).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Good signature")) {
		g.t.Fatalf("gpg --verify %s %s: %v\n%s", sig, data, err, out)
	}
}
