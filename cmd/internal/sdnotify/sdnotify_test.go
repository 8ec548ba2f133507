package sdnotify_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-project/signet/cmd/internal/sdnotify"
)

// listen opens a real unix datagram socket, as systemd does, and points
// $NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyPath(t *testing.T) {
	c := listen(t, filepath.Join(t.TempDir(), "notify"))
	ok, err := sdnotify.Notify(sdnotify.Ready + "\n" + sdnotify.Status("serving\n2 bridges"))
	if !ok || err != nil {
		t.Fatalf("Notify = %v, %v", ok, err)
	}
	if got, want := read(t, c), "READY=1\nSTATUS=serving 2 bridges"; got != want {
		t.Fatalf("datagram %q, want %q", got, want)
	}
}

func TestNotifyAbstract(t *testing.T) {
	c := listen(t, "@signet-sdnotify-test-"+filepath.Base(t.TempDir()))
	if ok, err := sdnotify.Notify(sdnotify.Stopping); !ok || err != nil {
		t.Fatalf("Notify = %v, %v", ok, err)
	}
	if got := read(t, c); got != "STOPPING=1" {
		t.Fatalf("datagram %q", got)
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	if ok, err := sdnotify.Notify(sdnotify.Ready); ok || err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", ok, err)
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if _, err := sdnotify.Notify(sdnotify.Ready); err == nil {
		t.Fatal("an unsupported address was accepted")
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if ok, err := sdnotify.Notify(sdnotify.Ready); ok || err == nil {
		t.Fatalf("a missing socket: %v, %v; want an error", ok, err)
	}
}
