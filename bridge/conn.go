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
// stuck peer cannot hold a pairing for ever, by the request's overall
// deadline, and (on the client leg) by the minimum transfer rate; it
// counts the bytes written to it (the bytes the bridge forwards in that
// direction).
type timedConn struct {
	net.Conn
	peer    string
	timeout time.Duration
	written prometheus.Counter
	// end is the request's overall deadline (zero: none); total is the
	// duration it was set from, for the error.
	end   time.Time
	total time.Duration
	// rd and wr meter the client's sending and reading (nil: no minimum).
	rd, wr *meter
}

// deadline sets the next read or write deadline and says which bound it
// is: "timeout", "rate" or "end".
func (c *timedConn) deadline(m *meter, set func(time.Time) error) string {
	now := time.Now()
	var d time.Time
	by := ""
	if c.timeout > 0 {
		d, by = now.Add(c.timeout), "timeout"
	}
	if budget, ok := m.budget(); ok {
		if t := now.Add(max(budget, 0)); d.IsZero() || t.Before(d) {
			d, by = t, "rate"
		}
	}
	if !c.end.IsZero() && (d.IsZero() || c.end.Before(d)) {
		d, by = c.end, "end"
	}
	if by != "" {
		set(d)
	}
	return by
}

func (c *timedConn) fail(by, op string, m *meter) error {
	switch by {
	case "rate":
		return m.slow(op)
	case "end":
		return &deadlineError{d: c.total}
	}
	return &stallError{peer: c.peer, op: op, d: c.timeout}
}

func (c *timedConn) Read(p []byte) (int, error) {
	by := c.deadline(c.rd, c.Conn.SetReadDeadline)
	t0 := time.Now()
	n, err := c.Conn.Read(p)
	c.rd.add(n, time.Since(t0))
	if err != nil && isTimeout(err) {
		err = c.fail(by, "read", c.rd)
	}
	return n, err
}

func (c *timedConn) Write(p []byte) (int, error) {
	by := c.deadline(c.wr, c.Conn.SetWriteDeadline)
	t0 := time.Now()
	n, err := c.Conn.Write(p)
	c.wr.add(n, time.Since(t0))
	if c.written != nil && n > 0 {
		c.written.Add(float64(n))
	}
	if err != nil && isTimeout(err) {
		err = c.fail(by, "write", c.wr)
	}
	return n, err
}
