// Package postgrestest gives tests a throwaway PostgreSQL cluster: Debian's
// (or Fedora's) PostgreSQL server binaries, initdb run as the postgres user
// through runuser when the test runs as root, every file (data directory,
// socket, log) in a temporary directory, a free loopback port. Nothing
// touches a system cluster, and the cleanup stops the server and removes
// its files.
//
// Local (Unix socket) connections are trusted; TCP connections on
// 127.0.0.1 need a password (scram-sha-256), so tests can exercise
// password handling.
//
// Missing binaries skip the test outside CI and fail it when CI=true
// (scripts/install-deps.sh installs them). Tests that start a cluster skip
// under -short.
package postgrestest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// StartTimeout bounds initdb and the server's start-up. A cluster starts
// in about 1.5 s on an idle machine; the suite shares two cores with much
// else.
const StartTimeout = 2 * time.Minute

// Cluster is a running private PostgreSQL server. Use Start.
type Cluster struct {
	// Dir holds everything: data/, the socket and server.log.
	Dir string
	// SocketDir is the directory of the Unix socket.
	SocketDir string
	// Port is the TCP port on 127.0.0.1 (and the socket's number).
	Port int
	// Superuser is the cluster's superuser, reachable without a password
	// over the socket.
	Superuser string

	bin     string
	runAs   string // user to run the server programs as ("" = ourselves)
	mu      sync.Mutex
	dbSeq   int
	stopped bool
}

// binDirs are where PostgreSQL's server programs live: Debian keeps them
// off PATH under a versioned directory, Fedora installs them in /usr/bin.
func binDir() (string, error) {
	cands, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Highest version first.
	for i := len(cands) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(cands[i], "initdb")); err == nil {
			return cands[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	for _, d := range []string{"/usr/bin", "/usr/pgsql/bin"} {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server programs (initdb, pg_ctl) are not installed (scripts/install-deps.sh installs postgresql)")
}

// errUnavailable marks what is missing from the machine, as opposed to a
// cluster that fails to start.
type errUnavailable struct{ error }

// Start starts a cluster for t and stops and removes it when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	testenv.SkipShort(t, "starts PostgreSQL")
	c, err := launch()
	if c != nil {
		t.Cleanup(c.Remove)
	}
	check(t, err)
	return c
}

func check(t testing.TB, err error) {
	t.Helper()
	var u errUnavailable
	switch {
	case errors.As(err, &u):
		testenv.Unavailable(t, "%v", err)
	case err != nil:
		t.Fatalf("starting PostgreSQL: %v", err)
	}
}

var shared struct {
	mu  sync.Mutex
	c   *Cluster
	err error
}

// Shared returns one cluster for the whole test binary, started on first
// use; give each test its own database (CreateDatabase). The package's
// TestMain must call StopShared after m.Run.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	testenv.SkipShort(t, "starts PostgreSQL")
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = launch()
		if shared.err != nil && shared.c != nil {
			shared.c.Remove()
			shared.c = nil
		}
	}
	check(t, shared.err)
	return shared.c
}

// StopShared stops and removes the cluster Shared started, if any.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		shared.c.Remove()
		shared.c = nil
	}
}

// launch starts a cluster. On error the returned cluster, if not nil,
// must still be removed.
func launch() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, errUnavailable{err}
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, errUnavailable{fmt.Errorf("running as root but there is no postgres user to run PostgreSQL as: %w", err)}
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			return nil, errUnavailable{fmt.Errorf("runuser is not installed (util-linux): %w", err)}
		}
		c.runAs = "postgres"
	}
	dir, err := os.MkdirTemp("", "signet-postgres-")
	if err != nil {
		return nil, err
	}
	c.Dir = dir
	c.SocketDir = filepath.Join(dir, "sock")
	return c, c.start()
}

// Remove stops the server and deletes its files.
func (c *Cluster) Remove() {
	c.Stop()
	os.RemoveAll(c.Dir)
}

// command builds a command running a PostgreSQL program as the cluster's
// user.
func (c *Cluster) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.Dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TZ=UTC"}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *Cluster) run(ctx context.Context, prog string, args ...string) error {
	var out bytes.Buffer
	cmd := c.command(ctx, prog, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, tail(out.String()))
	}
	return nil
}

func tail(s string) string {
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

func (c *Cluster) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := os.MkdirAll(c.SocketDir, 0o755); err != nil {
		return err
	}
	if c.runAs != "" {
		u, err := user.Lookup(c.runAs)
		if err != nil {
			return err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{c.Dir, c.SocketDir} {
			if err := os.Chown(p, uid, gid); err != nil {
				return err
			}
		}
	}
	c.Superuser = "postgres"
	data := filepath.Join(c.Dir, "data")
	if err := c.run(ctx, "initdb", "-D", data, "-U", c.Superuser, "-E", "UTF8", "--locale=C.UTF-8",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"); err != nil {
		return err
	}
	// The port is free now; another process may take it before the server
	// binds it, in which case the start fails and is retried on another.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var ports []int
		if ports, err = testenv.FindFreePorts(1); err != nil {
			return err
		}
		c.Port = ports[0]
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"+
			" -c synchronous_commit=off -c max_connections=200 -c shared_buffers=16MB", c.Port, c.SocketDir)
		err = c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(c.Dir, "server.log"),
			"-o", opts, "-w", "-t", strconv.Itoa(int(StartTimeout/time.Second)), "start")
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	log, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
	return fmt.Errorf("%w\nserver.log:\n%s", err, tail(string(log)))
}

// Stop stops the server (immediately: the data is thrown away). It is
// safe to call more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	done := c.stopped || c.Port == 0
	c.stopped = true
	c.mu.Unlock()
	if done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.run(ctx, "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "-t", "50", "stop")
}

// URL returns a postgres:// URL for database db as the superuser over the
// Unix socket, without a password.
func (c *Cluster) URL(db string) string {
	q := url.Values{}
	q.Set("host", c.SocketDir)
	q.Set("port", strconv.Itoa(c.Port))
	q.Set("user", c.Superuser)
	q.Set("sslmode", "disable")
	return "postgres:///" + url.PathEscape(db) + "?" + q.Encode()
}

// TCPURL returns a postgres:// URL for database db as user over TCP on
// 127.0.0.1, without a password (the server asks for one).
func (c *Cluster) TCPURL(user, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.PathEscape(user), c.Port, url.PathEscape(db))
}

// Psql runs SQL through psql as the superuser on database db and returns
// its output (unaligned, tuples only).
func (c *Cluster) Psql(db, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	// The SQL goes through stdin: it may hold a password.
	cmd := c.command(ctx, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", c.Superuser, "-d", db, "-f", "-")
	cmd.Stdin = strings.NewReader(sql)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// CreateDatabase creates a new, empty database with a fresh name and
// returns its name; use URL for a connection string.
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	c.mu.Lock()
	c.dbSeq++
	seq := c.dbSeq
	c.mu.Unlock()
	var r [4]byte
	rand.Read(r[:])
	name := fmt.Sprintf("signet_%d_%s", seq, hex.EncodeToString(r[:]))
	if _, err := c.Psql("postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return name
}

// CreateRole creates a login role with the given password, owning
// nothing; grant it what the test needs with Psql.
func (c *Cluster) CreateRole(t testing.TB, role, password string) {
	t.Helper()
	if _, err := c.Psql("postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'",
		role, strings.ReplaceAll(password, "'", "''"))); err != nil {
		t.Fatal(err)
	}
}
