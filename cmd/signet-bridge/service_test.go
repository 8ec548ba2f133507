package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// bridgeCmd runs this test binary as signet-bridge.
func bridgeCmd(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "SIGNET_BRIDGE_AS_MAIN=1"), env...)
	return cmd
}

// TestNotifyAndStatus runs the real binary as systemd's Type=notify would:
// READY=1 arrives on a real unix datagram socket only once both ports
// accept connections; `status` reports from the metrics endpoint with the
// plugin exit statuses; SIGTERM brings STOPPING=1.
func TestNotifyAndStatus(t *testing.T) {
	testenv.SkipShort(t, "runs signet-bridge as a process")
	testenv.SkipShort(t, "runs signet-bridge as a process")
	sock := filepath.Join(t.TempDir(), "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a := freeAddrs(t, 3)
	client, server, metrics := a[0], a[1], a[2]
	cfg := writeConfig(t, fmt.Sprintf("client_listen = %q\nserver_listen = %q\nmetrics_listen = %q\nshutdown_timeout = \"5s\"", client, server, metrics), "")
	cmd := bridgeCmd([]string{"NOTIFY_SOCKET=" + sock}, "run", "--config", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	read := func(want string) string {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("no datagram (want %s): %v\n%s", want, err, stderr.String())
		}
		if msg := string(buf[:n]); strings.Contains(msg, want) {
			return msg
		} else {
			t.Fatalf("datagram %q, want %s", msg, want)
		}
		return ""
	}
	msg := read("READY=1")
	if !strings.Contains(msg, "STATUS=listening: clients on "+client+", servers on "+server) {
		t.Errorf("READY datagram %q", msg)
	}
	for _, a := range []string{client, server} { // no retries: ready means listening
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Fatalf("READY=1 was sent but %s refuses: %v", a, err)
		}
		c.Close()
	}
	status := func(wantCode int, wantPrefix string) {
		t.Helper()
		var out bytes.Buffer
		c := bridgeCmd(nil, "status", "--config", cfg)
		c.Stdout = &out
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode || !strings.HasPrefix(out.String(), wantPrefix) {
			t.Fatalf("status exit %d, want %d:\n%s", code, wantCode, out.String())
		}
	}
	// No signing server has connected: WARNING.
	status(1, "WARNING: signet-bridge has 0 idle server connections, 0 clients waiting\nrequests: 0 relayed")
	cmd.Process.Signal(syscall.SIGTERM)
	read("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	status(2, "CRITICAL: metrics endpoint "+metrics)
}
