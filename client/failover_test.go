package client_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/servertest"
	"github.com/signet-project/signet/internal/testenv"
)

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

var fastRetry = client.RetryPolicy{Rounds: 3, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}

// TestFailoverRefused: a bridge that refuses connections is skipped, the
// next one takes the request; with every bridge down the client gives up
// after its bounded rounds and says why.
func TestFailoverRefused(t *testing.T) {
	e := servertest.New(t)
	ctx := ctxT(t)
	cfg := e.Config("root")
	relay := servertest.RelayAddr(e.Relay)
	cfg.BridgeHost, cfg.Bridges = "", []string{deadAddr(t), relay}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Retry = fastRetry
	if got := c.Bridges(); len(got) != 2 || got[1].String() != relay {
		t.Fatalf("Bridges() = %v", got)
	}
	for range 2 {
		users, err := c.ListUsers(ctx, []byte(servertest.RootPW))
		if err != nil || len(users) != 3 {
			t.Fatalf("ListUsers through the second bridge = %q, %v", users, err)
		}
	}

	cfg.Bridges = []string{deadAddr(t), deadAddr(t)}
	c, err = client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Retry = fastRetry
	_, err = c.ListUsers(ctx, []byte(servertest.RootPW))
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "after 6 attempts") {
		t.Fatalf("every bridge down: %v; want connection refused after 3 rounds of 2", err)
	}
}

// TestSignRPMsResume: two relays in front of one server; the first dies
// (its connections cut, no EOF, then refusing) half-way through a
// sign-rpms batch's replies. The batch resumes through the second with
// the packages that had no reply: every package is reported exactly once,
// signed, and rpmkeys verifies every output.
func TestSignRPMsResume(t *testing.T) {
	testenv.MustHave(t, "rpmkeys")
	half := func(r *servertest.Relay, total int64) int64 { r.CutAt(total / 2); return total / 2 }
	t.Run("head", func(t *testing.T) { testSignRPMsResume(t, true, half) })
	t.Run("whole", func(t *testing.T) {
		testenv.SkipShort(t, "the same resume with whole packages")
		testSignRPMsResume(t, false, half)
	})
	// The relay loses its server right after the main reply (141 bytes:
	// code, empty field block, MAC, length, MAC), at an item boundary: the
	// client sees its TLS session end cleanly, without the outer EOF
	// marker that ends the replies.
	t.Run("server-lost", func(t *testing.T) {
		testSignRPMsResume(t, true, func(r *servertest.Relay, _ int64) int64 { r.CutServerAt(141); return 141 })
	})
}

// testSignRPMsResume signs a batch once through the first relay alone,
// then cut (given the length of that batch's reply stream, it returns
// where the stream is cut) and signs it again with both relays listed.
func testSignRPMsResume(t *testing.T, head bool, cut func(r *servertest.Relay, total int64) int64) {
	e := servertest.New(t)
	second := e.AddRelay()
	ctx := ctxT(t)
	src := artifacts.RPMUtilsTestdata(t)
	in, out, ctl := t.TempDir(), t.TempDir(), t.TempDir()
	var files, control []client.RPMFile
	for k := range 4 {
		for _, n := range []string{"payload-test-0.1-w9.gzdio.x86_64.rpm", "empty-0.1-1.x86_64.rpm", "zero-epoch-0.1-1.x86_64.rpm"} {
			b, err := os.ReadFile(filepath.Join(src, n))
			if err != nil {
				t.Fatal(err)
			}
			name := strings.Replace(n, ".rpm", "-"+string(rune('a'+k))+".rpm", 1)
			if err := os.WriteFile(filepath.Join(in, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, client.RPMFile{Path: filepath.Join(in, name), Output: filepath.Join(out, name)})
			control = append(control, client.RPMFile{Path: filepath.Join(in, name), Output: filepath.Join(ctl, name)})
		}
	}
	opts := func(seen map[string]int) client.SignRPMOptions {
		return client.SignRPMOptions{Key: "fedora", Passphrase: []byte(servertest.AlicePass), HeadSigning: head,
			Progress: func(done, total int, r client.RPMResult) { seen[r.Path]++ }}
	}
	lastDown := func(r *servertest.Relay) int64 {
		for range 1000 { // the relay records it as the pair ends
			if n := r.LastDown(); n > 0 {
				return n
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the relay recorded no connection")
		return 0
	}

	// Control, through the first relay alone: how long the server's
	// outer stream of this batch is.
	alice := newClient(t, e, "alice")
	res, err := alice.SignRPMs(ctx, opts(map[string]int{}), control)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("control %s: %v", r.Path, r.Err)
		}
	}
	total := lastDown(e.Relay)

	// The first relay dies half-way through the replies.
	cfg := e.Config("alice")
	cfg.Bridges = []string{servertest.RelayAddr(second)}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Retry = fastRetry
	var log bytes.Buffer
	c.Log = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	at := cut(e.Relay, total)
	seen := map[string]int{}
	t0 := time.Now()
	res, err = c.SignRPMs(ctx, opts(seen), files)
	t.Logf("batch took %v\n%s", time.Since(t0), log.String())
	if err != nil {
		t.Fatalf("batch: %v\n%s", err, log.String())
	}
	if n := e.Relay.LastDown(); n > at || n == 0 {
		t.Fatalf("the first relay forwarded %d of %d bytes: it was not cut at %d", n, total, at)
	}
	if !strings.Contains(log.String(), "resuming with the packages that have no reply yet") {
		t.Fatalf("the batch did not resume:\n%s", log.String())
	}
	lastDown(second)
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Path, r.Err)
		}
		if seen[r.Path] != 1 {
			t.Errorf("%s reported %d times", r.Path, seen[r.Path])
		}
	}
	if len(seen) != len(files) {
		t.Errorf("%d packages reported, want %d", len(seen), len(files))
	}
	if names := servertest.DirNames(t, out); len(names) != len(files) {
		t.Fatalf("outputs %q, want %d", names, len(files))
	}

	// rpmkeys verifies every output.
	var cert bytes.Buffer
	if err := c.GetPublicKey(ctx, client.GetPublicKeyRequest{Key: "fedora", Auth: client.Auth{Passphrase: []byte(servertest.AlicePass)}}, &cert); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "key.asc"), cert.Bytes(), 0o644)
	db := filepath.Join(dir, "db")
	if o, err := exec.Command("rpmkeys", "--dbpath", db, "--import", filepath.Join(dir, "key.asc")).CombinedOutput(); err != nil {
		t.Fatalf("rpmkeys --import: %v\n%s", err, o)
	}
	for _, f := range files {
		o, err := exec.Command("rpmkeys", "--dbpath", db, "--checksig", "-v", f.Output).CombinedOutput()
		if err != nil || !strings.Contains(string(o), "Signature, key ID") || strings.Contains(string(o), "NOKEY") || strings.Contains(string(o), "BAD") {
			t.Errorf("rpmkeys --checksig %s: %v\n%s", f.Output, err, o)
		}
	}
}
