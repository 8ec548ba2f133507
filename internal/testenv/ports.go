package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Ports for programs that take a port number rather than a listener (a
// Koji hub, Sigul's bridge, RabbitMQ, PostgreSQL) are chosen so that
// nothing can take one between its choice and its use:
//
//   - They come from below the kernel's ephemeral range
//     (net.ipv4.ip_local_port_range), which the kernel never hands out for
//     a listen on port 0 or for an outgoing connection. A port chosen by
//     listening on port 0 and closing could be given to any connection on
//     the machine a moment later; CI saw a Koji hub fail to bind that way.
//   - Test binaries run in parallel (go test runs packages at once) agree
//     through an flock(2) on one file per port in portLockDir: a port is
//     handed out only while its lock is held, and the kernel drops the lock
//     when the holder exits, however it exits.
//   - A port is also bound once while chosen, so one in use by anything
//     else on the machine is passed over.
const (
	portFloor   = 20000 // the range starts here ...
	portCeiling = 32768 // ... and ends below this or the ephemeral range
)

var portLockDir = filepath.Join(os.TempDir(), "signet-test-ports")

// FreePorts returns n distinct loopback TCP ports, reserved for this test
// until it and its cleanups end, for programs that take a port number
// rather than a listener. A port nothing will listen on stays closed, so
// one also serves as "a port that refuses connections".
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, locks, err := reservePorts(n)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { closeAll(locks) })
	return ports
}

// FindFreePorts is FreePorts for code that returns an error rather than
// ending a test, such as a service started once for a whole test binary;
// its ports stay reserved until the process exits.
func FindFreePorts(n int) ([]int, error) {
	ports, _, err := reservePorts(n) // the locks close when the process exits
	return ports, err
}

func reservePorts(n int) ([]int, []*os.File, error) {
	lo, hi := portFloor, min(portCeiling, ephemeralLow())
	if hi-lo < 4*n {
		return nil, nil, fmt.Errorf("no room for %d test ports below the ephemeral range (%d-%d)", n, lo, hi)
	}
	if err := os.MkdirAll(portLockDir, 0o777); err != nil {
		return nil, nil, fmt.Errorf("test port locks: %w", err)
	}
	os.Chmod(portLockDir, 0o777|os.ModeSticky) // shared by every user's tests; best effort
	ports := make([]int, 0, n)
	locks := make([]*os.File, 0, n)
	span := hi - lo
	first := rand.IntN(span)
	for i := 0; i < span && len(ports) < n; i++ {
		p := lo + (first+i)%span
		lock, err := lockPort(p)
		if err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // another test holds it
			}
			closeAll(locks)
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			lock.Close() // in use by something else
			continue
		}
		ln.Close()
		ports = append(ports, p)
		locks = append(locks, lock)
	}
	if len(ports) < n {
		closeAll(locks)
		return nil, nil, fmt.Errorf("only %d of %d free loopback ports in %d-%d", len(ports), n, lo, hi-1)
	}
	return ports, locks, nil
}

// lockPort takes the lock on port p without waiting; the error wraps
// EWOULDBLOCK when another open file holds it.
func lockPort(p int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(portLockDir, strconv.Itoa(p)), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("test port lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("test port lock %d: %w", p, err)
	}
	return f, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range, or
// Linux's default when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
