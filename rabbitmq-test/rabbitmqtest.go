// Package rabbitmqtest gives tests a throwaway RabbitMQ broker: Debian's
// rabbitmq-server started on free loopback ports, with its own node name,
// its own epmd, and every file (Mnesia, logs, cookie, configuration) in a
// temporary directory. Nothing touches a system instance, and Stop leaves
// no process behind.
//
// A missing rabbitmq-server skips the test outside CI and fails it when
// CI=true (scripts/install-deps.sh installs it).
package rabbitmqtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// StartTimeout bounds how long Start and Restart wait for the broker. A
// node boots in about 5 s on an idle machine; with the rest of the suite
// (QEMU, RSA key generation) on two cores it has taken over a minute.
const StartTimeout = 3 * time.Minute

// Broker is a running private RabbitMQ node. Its zero value is not usable:
// use Start.
type Broker struct {
	// Dir holds everything the node writes.
	Dir string
	// Port is the AMQP port on 127.0.0.1; DistPort and EPMDPort are the
	// Erlang distribution and epmd ports.
	Port, DistPort, EPMDPort int
	// Node is the Erlang node name (name@localhost).
	Node string
	// TLS, with StartTLS: the AMQPS port on 127.0.0.1, the CA that issued
	// the broker's certificate (for 127.0.0.1 and localhost) and a client
	// certificate and key for SASL EXTERNAL as user ExternalUser.
	TLSPort                 int
	CAFile, ClientCert      string
	ClientKey, ExternalUser string

	bin  string
	cred *syscall.Credential

	mu       sync.Mutex
	server   *exec.Cmd
	sdone    chan struct{}
	epmd     *exec.Cmd
	edone    chan struct{}
	watchers []*exec.Cmd
}

// binDir returns where the RabbitMQ scripts live. Debian's /usr/sbin
// wrappers switch users through su, which resets HOME and detaches the
// process from us, so the scripts behind them are run directly.
func binDir() (string, error) {
	for _, d := range []string{"/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin"} {
		if _, err := os.Stat(filepath.Join(d, "rabbitmq-server")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("rabbitmq-server"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("rabbitmq-server is not installed (run scripts/install-deps.sh)")
}

// Start starts a broker for t and stops it (and removes its files) when t
// ends.
func Start(t testing.TB) *Broker {
	t.Helper()
	return start(t, "")
}

// StartTLS starts a broker that also listens for AMQPS, requires client
// certificates there and accepts SASL EXTERNAL (rabbitmq_auth_mechanism_ssl,
// the login is the certificate's common name) for user, whom it creates
// with full permissions on the default virtual host.
func StartTLS(t testing.TB, user string) *Broker {
	t.Helper()
	return start(t, user)
}

func start(t testing.TB, externalUser string) *Broker {
	t.Helper()
	testenv.SkipShort(t, "starts RabbitMQ")
	bin, err := binDir()
	if err == nil {
		_, err = exec.LookPath("epmd")
	}
	if err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	dir, err := os.MkdirTemp("", "signet-rabbitmq-")
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{Dir: dir, bin: bin, ExternalUser: externalUser}
	t.Cleanup(func() {
		b.Stop()
		os.RemoveAll(dir)
	})
	if err := b.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := b.start(); err != nil {
		t.Fatalf("starting RabbitMQ: %v", err)
	}
	if externalUser != "" {
		// EXTERNAL checks no password; the user must exist.
		var pw [16]byte
		rand.Read(pw[:])
		for _, args := range [][]string{{"add_user", externalUser, hex.EncodeToString(pw[:])},
			{"set_permissions", "-p", "/", externalUser, ".*", ".*", ".*"}} {
			if _, err := b.Ctl(append([]string{"-q"}, args...)...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

// AMQPSURL is the AMQPS URL for SASL EXTERNAL (no user or password).
func (b *Broker) AMQPSURL() string {
	return fmt.Sprintf("amqps://127.0.0.1:%d/", b.TLSPort)
}

// URL is the AMQP URL for the default guest user (allowed from loopback).
func (b *Broker) URL() string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", b.Port)
}

// prepare chooses ports and a node name and writes the configuration. As
// root the node runs as the rabbitmq user, which must own the directory.
func (b *Broker) prepare() error {
	ports, err := testenv.FindFreePorts(4)
	if err != nil {
		return err
	}
	b.Port, b.DistPort, b.EPMDPort = ports[0], ports[1], ports[2]
	var r [4]byte
	rand.Read(r[:])
	b.Node = "signet-test-" + hex.EncodeToString(r[:]) + "@localhost"
	for _, d := range []string{"mnesia", "log", "home"} {
		if err := os.MkdirAll(filepath.Join(b.Dir, d), 0o755); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nlog.file.level = info\nlog.console = false\n", b.Port)
	plugins := "[].\n"
	if b.ExternalUser != "" {
		b.TLSPort = ports[3]
		if err := b.writePKI(); err != nil {
			return err
		}
		conf += fmt.Sprintf(`listeners.ssl.default = 127.0.0.1:%d
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
auth_mechanisms.1 = EXTERNAL
auth_mechanisms.2 = PLAIN
auth_mechanisms.3 = AMQPLAIN
ssl_cert_login_from = common_name
`, b.TLSPort, b.CAFile, filepath.Join(b.Dir, "pki", "server.pem"), filepath.Join(b.Dir, "pki", "server-key.pem"))
		plugins = "[rabbitmq_auth_mechanism_ssl].\n"
	}
	files := map[string]string{"rabbitmq.conf": conf, "enabled_plugins": plugins}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(b.Dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("rabbitmq")
	if err != nil {
		return fmt.Errorf("running as root, but there is no rabbitmq user to run the broker as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	b.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	return filepath.Walk(b.Dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// env is the environment of the server and of the command-line tools.
func (b *Broker) env() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8",
		"HOME=" + filepath.Join(b.Dir, "home"),
		"RABBITMQ_NODENAME=" + b.Node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(b.Port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(b.DistPort),
		"ERL_EPMD_PORT=" + strconv.Itoa(b.EPMDPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(b.Dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(b.Dir, "log"),
		"RABBITMQ_PID_FILE=" + filepath.Join(b.Dir, "rabbitmq.pid"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(b.Dir, "rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(b.Dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(b.Dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(b.Dir, "rabbitmq-env.conf"),
	}
	return env
}

func (b *Broker) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = b.env()
	cmd.Dir = b.Dir
	// Its own process group, so that Stop can end what the node spawns.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: b.cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// start runs a private epmd and the node, and waits until the rabbit
// application runs and the AMQP port accepts connections.
func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(b.Dir, "server.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if b.epmd == nil {
		// In the foreground (no -daemon), so it stays our child.
		e := b.command(context.Background(), "epmd", "-port", strconv.Itoa(b.EPMDPort), "-address", "127.0.0.1")
		e.Stdout, e.Stderr = logf, logf
		if err := e.Start(); err != nil {
			return fmt.Errorf("epmd: %w", err)
		}
		b.epmd, b.edone = e, make(chan struct{})
		go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(e, b.edone)
		b.watch(e)
	}
	s := b.command(context.Background(), filepath.Join(b.bin, "rabbitmq-server"))
	s.Stdout, s.Stderr = logf, logf
	if err := s.Start(); err != nil {
		return err
	}
	b.server, b.sdone = s, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(s, b.sdone)
	b.watch(s)

	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	// The AMQP port opens once the rabbit application has booted; polling
	// it is cheap. check_running then confirms (one Erlang VM start).
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-b.sdone:
			return fmt.Errorf("the node exited while starting:\n%s", b.tail())
		case <-ctx.Done():
			return fmt.Errorf("not listening on port %d within %s:\n%s", b.Port, StartTimeout, b.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	for {
		out, err := b.command(ctx, filepath.Join(b.bin, "rabbitmq-diagnostics"), "-q", "check_running").CombinedOutput()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rabbitmq-diagnostics check_running: %v: %s\n%s", err, out, b.tail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// watch starts a watchdog that kills c's process group if this test
// process dies without stopping the broker (killed, or a timeout panic):
// the node runs in a group of its own, which a signal to the test's group
// does not reach. Stop ends the watchdogs.
func (b *Broker) watch(c *exec.Cmd) {
	w := exec.Command("sh", "-c", `while kill -0 "$0" 2>/dev/null; do sleep 1; done; env kill -KILL -- "-$1" 2>/dev/null`,
		strconv.Itoa(os.Getpid()), strconv.Itoa(c.Process.Pid))
	w.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if w.Start() == nil {
		b.watchers = append(b.watchers, w)
	}
}

// tail returns the end of the node's output and log, for failures.
func (b *Broker) tail() string {
	var buf bytes.Buffer
	for _, p := range []string{filepath.Join(b.Dir, "server.out"), filepath.Join(b.Dir, "log", b.Node+".log")} {
		data, _ := os.ReadFile(p)
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&buf, "--- %s\n%s\n", p, data)
	}
	return buf.String()
}

// Ctl runs rabbitmqctl against the node and returns its standard output.
func (b *Broker) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // an Erlang VM start, on a loaded machine
	defer cancel()
	var out, errb bytes.Buffer
	cmd := b.command(ctx, filepath.Join(b.bin, "rabbitmqctl"), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// QueueCounts is what rabbitmqctl list_queues reports for one queue.
type QueueCounts struct {
	Ready, Unacked int
}

// Queues returns messages_ready and messages_unacknowledged of every queue.
func (b *Broker) Queues() (map[string]QueueCounts, error) {
	out, err := b.Ctl("-q", "list_queues", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged")
	if err != nil {
		return nil, err
	}
	m := map[string]QueueCounts{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		r, err1 := strconv.Atoi(f[1])
		u, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		m[f[0]] = QueueCounts{r, u}
	}
	return m, nil
}

// Stop stops the node (rabbitmqctl stop, then SIGKILL to its process group
// if it lingers) and its epmd. It may be called more than once.
func (b *Broker) Stop() {
	b.stopNode()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.epmd != nil {
		syscall.Kill(-b.epmd.Process.Pid, syscall.SIGKILL)
		<-b.edone
		b.epmd = nil
	}
	for _, w := range b.watchers {
		w.Process.Kill()
		w.Wait()
	}
	b.watchers = nil
}

func (b *Broker) stopNode() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.server == nil {
		return
	}
	select {
	case <-b.sdone:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		b.command(ctx, filepath.Join(b.bin, "rabbitmqctl"), "stop").Run()
		cancel()
		select {
		case <-b.sdone:
		case <-time.After(10 * time.Second):
		}
	}
	// Whatever the node left in its group (erl_child_setup, ...).
	syscall.Kill(-b.server.Process.Pid, syscall.SIGKILL)
	<-b.sdone
	b.server = nil
}

// Restart stops the node and starts it again on the same ports with the
// same data: durable queues and persistent messages survive.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.stopNode()
	if err := b.start(); err != nil {
		t.Fatalf("restarting RabbitMQ: %v", err)
	}
}

// StopNode stops the node but keeps epmd, for a test that restarts it
// later with StartNode.
func (b *Broker) StopNode() { b.stopNode() }

// StartNode starts a node stopped by StopNode.
func (b *Broker) StartNode(t testing.TB) {
	t.Helper()
	if err := b.start(); err != nil {
		t.Fatalf("starting RabbitMQ again: %v", err)
	}
}
