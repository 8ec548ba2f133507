// Package sdnotify tells systemd (or any service manager speaking the
// sd_notify protocol) how a service is doing: one datagram of
// newline-separated VARIABLE=value assignments sent to the unix socket
// named by $NOTIFY_SOCKET. It is written here rather than imported because
// the whole protocol a Type=notify service needs is that one sendto; the
// credentials and file-descriptor parts of libsystemd are not used.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Common states.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state to $NOTIFY_SOCKET. It reports false, and does
// nothing, when the variable is unset (not started by a service manager
// with Type=notify). A name starting with '@' is an abstract socket.
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return false, fmt.Errorf("NOTIFY_SOCKET %q: only unix socket paths and abstract names are supported", path)
	}
	// Go's net package maps a leading '@' to Linux's abstract namespace.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notifying the service manager: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("notifying the service manager: %w", err)
	}
	return true, nil
}

// Status formats a STATUS= line (one line: newlines become spaces).
func Status(format string, args ...any) string {
	s := fmt.Sprintf(format, args...)
	b := []byte(s)
	for i, c := range b {
		if c == '\n' {
			b[i] = ' '
		}
	}
	return "STATUS=" + string(b)
}
