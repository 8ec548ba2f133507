package protocol

import (
	"fmt"
	"io"
)

// ReuseALPN is the ALPN protocol id of signet's extension that lets one
// outer server-bridge connection carry one request after another (see
// docs/PROTOCOL.md, "Extensions"). A signet server offers it on its outer
// TLS connection and a signet bridge on its server port; only when the
// handshake negotiated it do both ends follow the end-of-request rule of
// Mux.AwaitEOF and keep the connection for the next request. Sigul's
// programs negotiate no ALPN and so keep one request per connection.
const ReuseALPN = "signet-reuse/1"

// AwaitEOF ends one request on a connection that will carry another: it
// reads from the connection until both of the peer's streams have ended
// with their EOF markers, and reads nothing after the second marker, so
// that a new Mux over the same connection starts exactly at the next
// request's first chunk. Inner-stream data still unread is discarded (the
// peer's close_notify of an inner session already closed); outer-stream
// data, buffered or arriving, is refused with a *MalformedError, since a
// request that ended cleanly leaves none. It also fails if the connection
// ends, cleanly or not, before both markers, and returns a read timeout
// as is. Call it after the last read of the request's items, when no
// other goroutine reads the Mux.
func (m *Mux) AwaitEOF() error { return m.d.awaitEOF() }

func (d *demux) awaitEOF() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.discardLocked(Inner)
	for {
		if d.st[Outer].qlen > 0 {
			return malformed("end of request", "%d bytes of outer data after the request's items", d.st[Outer].qlen)
		}
		if !d.busy && d.cr.Remaining() > 0 && d.cr.Header().Stream() == Outer {
			return malformed("end of request", "outer data (%s) after the request's items", d.cr.Header())
		}
		if d.st[Outer].marker && d.st[Inner].marker {
			return nil
		}
		if d.err != nil {
			if d.err == io.EOF {
				return fmt.Errorf("protocol: the connection ended before the %s: %w", missingMarkers(d), io.ErrUnexpectedEOF)
			}
			return d.err
		}
		if d.busy {
			d.cond.Wait()
			continue
		}
		if _, err := d.step(-1, nil); err != nil && d.err == nil {
			return err // a timeout
		}
	}
}

func missingMarkers(d *demux) string {
	switch {
	case !d.st[Outer].marker && !d.st[Inner].marker:
		return "outer and inner EOF markers"
	case !d.st[Outer].marker:
		return "outer EOF marker"
	}
	return "inner EOF marker"
}
