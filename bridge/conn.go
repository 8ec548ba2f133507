package bridge

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stallError reports a peer that sent nothing, or read nothing, for a whole
// timeout (§10 allows local timeouts). It deliberately has no Timeout
// method: the protocol package retries reads that time out, and a stalled
// peer must end the request instead.
type stallError struct {
	peer string // "client" or "server"
	op   string // "read" or "write"
	d    time.Duration
}

func (e *stallError) Error() string {
	if e.op == "read" {
		return fmt.Sprintf("bridge: the %s sent nothing for %s", e.peer, e.d)
	}
	return fmt.Sprintf("bridge: the %s accepted no data for %s", e.peer, e.d)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// timedConn bounds every Read and Write of one leg by a timeout, so that a
// stuck peer cannot hold a pairing for ever, and counts the bytes written
// to it (the bytes the bridge forwards in that direction).
type timedConn struct {
	net.Conn
	peer    string
	timeout time.Duration
	written prometheus.Counter
}

func (c *timedConn) Read(p []byte) (int, error) {
	if c.timeout > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	n, err := c.Conn.Read(p)
	if err != nil && isTimeout(err) {
		err = &stallError{peer: c.peer, op: "read", d: c.timeout}
	}
	return n, err
}

func (c *timedConn) Write(p []byte) (int, error) {
	if c.timeout > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	n, err := c.Conn.Write(p)
	if c.written != nil && n > 0 {
		c.written.Add(float64(n))
	}
	if err != nil && isTimeout(err) {
		err = &stallError{peer: c.peer, op: "write", d: c.timeout}
	}
	return n, err
}
