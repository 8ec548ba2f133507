package bridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-project/signet/protocol"
)

// dropError is a refusal with the result it is counted under.
type dropError struct {
	result string
	err    error
}

func (e *dropError) Error() string { return e.err.Error() }
func (e *dropError) Unwrap() error { return e.err }

func drop(result string, format string, args ...any) error {
	return &dropError{result: result, err: fmt.Errorf(format, args...)}
}

// isProtocolErr reports whether err is a wire-format or validation failure
// (as opposed to a connection that failed or stalled).
func isProtocolErr(err error) bool {
	for _, e := range []error{protocol.ErrMalformed, protocol.ErrLimit, protocol.ErrUnknownVersion,
		protocol.ErrMissingField, protocol.ErrInvalidField, protocol.ErrFieldNotAllowed, protocol.ErrUnknownOp} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// request is one client connection as it passes the bridge: what is logged
// and counted about it. Payload bytes and field values other than op and
// user are never logged.
type request struct {
	b        *Bridge
	start    time.Time
	client   string
	cn       string
	op, user string
	payload  uint64
	server   string
	wait     time.Duration
	// serverSeq is the request's number on its server connection (1 for
	// a fresh one); serverReuse: that connection has the reuse extension.
	serverSeq   int
	serverReuse bool
	subReqs     atomic.Int64
	subReps     atomic.Int64
	// rd meters the client's sending; it is on while the bridge waits for
	// request bytes the client should be sending (not while the client
	// waits for the server).
	rd *meter
}

// limitResult returns the result for an error that a rate or deadline
// limit caused, counting the limit's hit, or "".
func (b *Bridge) limitResult(err error) string {
	var se *slowError
	var de *deadlineError
	switch {
	case errors.As(err, &se):
		b.m.limitHit(LimitMinTransferRate)
		return ResultTooSlow
	case errors.As(err, &de):
		b.m.limitHit(LimitRequestTimeout)
		return ResultDeadline
	}
	return ""
}

func (r *request) finish(result, msg string, err error, extra ...any) {
	r.b.m.requests.WithLabelValues(opLabel(r.op), result).Inc()
	attrs := []any{"result", result, "op", r.op, "user", r.user, "client_cn", r.cn, "client_addr", r.client,
		"payload_len", r.payload, "duration_ms", time.Since(r.start).Milliseconds()}
	if r.server != "" {
		attrs = append(attrs, "server_addr", r.server, "pairing_wait_ms", r.wait.Milliseconds())
		if r.serverSeq > 1 {
			attrs = append(attrs, "server_conn_request", r.serverSeq)
		}
	}
	if n := r.subReqs.Load(); n > 0 {
		attrs = append(attrs, "sub_requests", n, "sub_replies", r.subReps.Load())
	}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	attrs = append(attrs, extra...)
	level := slog.LevelWarn
	if result == ResultRelayed {
		level = slog.LevelInfo
	}
	r.b.log.Log(context.Background(), level, msg, attrs...)
}

func (b *Bridge) cnAllowed(cn, user string) bool {
	return b.cfg.LenientCN || cn == user || slices.Contains(b.cfg.ProxyCNs, cn)
}

// kojiReason says why a request needs Koji, or returns "" (§4.2 steps 6
// and 8, §7.10).
func kojiReason(spec protocol.OpSpec, h *protocol.RequestHeader) string {
	f := h.Fields()
	if f.Has("koji-instance") {
		return "the request names a koji-instance"
	}
	if v, err := f.Bool("import-signature"); err == nil && v {
		return "import-signature asks the bridge to import the signature into Koji"
	}
	if spec.Name == "sign-rpm" && h.PayloadLen() == 0 {
		return "sign-rpm with an empty payload asks the bridge to fetch the RPM from Koji"
	}
	return ""
}

// returnData is the return-data field, true when absent.
func returnData(h *protocol.RequestHeader) bool {
	v, err := h.Fields().Bool("return-data")
	return err != nil || v
}

// refusal is why checkRequest refused a request: the result it is counted
// under, the log message and its details.
type refusal struct {
	result, msg string
	err         error
	extra       []any
}

// checkRequest applies the bridge's checks to the request header of a
// client whose certificate CN is cn (§4.2 steps 3 to 8): the §4.4
// whitelist and limits, the configured payload limits, CN against user,
// and Koji (when none is configured). It returns the operation's spec, or
// why it refused.
func (b *Bridge) checkRequest(h *protocol.RequestHeader, cn string) (protocol.OpSpec, *refusal) {
	spec, err := protocol.ValidateRequest(h)
	if err != nil {
		return spec, &refusal{result: ResultDroppedInvalid, msg: "request dropped: it fails the bridge's whitelist or limits (PROTOCOL-v1 §4.4)", err: err}
	}
	if lim, ok := b.cfg.OpLimits[spec.Name]; ok && h.PayloadLen() > lim {
		return spec, &refusal{result: ResultDroppedInvalid, msg: "request dropped: payload above the configured limit for this operation",
			err: &protocol.LimitError{What: "payload length of op " + spec.Name, Value: h.PayloadLen(), Limit: lim}}
	}
	if !b.cnAllowed(cn, h.User()) {
		return spec, &refusal{result: ResultDroppedCNMismatch, msg: "request dropped: the client certificate's CN is not the request's user; list the CN in proxy_cns if it may act for others"}
	}
	if why := kojiReason(spec, h); why != "" && len(b.cfg.Koji) == 0 {
		return spec, &refusal{result: ResultDroppedKoji, msg: "request dropped: it needs Koji and this bridge has no Koji instance configured; send the RPM itself, without koji-instance or import-signature",
			extra: []any{"koji_reason", why}}
	}
	return spec, nil
}

// handleClient serves one client connection: handshake, request header
// and checks, pairing, relay, teardown (§4.2).
func (b *Bridge) handleClient(raw net.Conn) {
	r := &request{b: b, start: time.Now(), client: raw.RemoteAddr().String()}
	limit, release := b.tryHandshake(false, raw.RemoteAddr())
	if limit != "" {
		b.m.limitHit(limit)
		b.log.Warn("client connection refused: too many TLS handshakes in progress", "client_addr", r.client, "limit", limit,
			"max_handshakes", b.cfg.MaxHandshakes, "max_handshakes_per_ip", b.cfg.MaxHandshakesPerIP)
		return
	}
	tc := tls.Server(raw, b.tls)
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	release()
	if err != nil {
		b.log.Warn("client TLS handshake failed", "client_addr", r.client, "err", err)
		return
	}
	var s *serverConn
	// Close the client first, then the server (§2.7).
	defer func() {
		tc.Close()
		if s != nil {
			s.release()
		}
	}()
	leaf := tc.ConnectionState().PeerCertificates[0]
	r.cn = leaf.Subject.CommonName
	if name := matchServerName(leaf, b.cfg.ServerNames); name != "" {
		r.finish(ResultDroppedServerCert, "request dropped: the client certificate is a signing server's (it names one of server_names); a server's certificate may not act as a client", nil, "server_name", name)
		return
	}
	if !b.enterCN(r.cn) {
		b.m.limitHit(LimitRequestsPerCN)
		r.finish(ResultDroppedCNLimit, "request dropped: this certificate already has its maximum of requests open (max_requests_per_cn)", nil,
			"max_requests", b.maxForCN(r.cn))
		return
	}
	defer b.leaveCN(r.cn)
	// The client must send its request at the minimum rate from now on,
	// and read whatever the bridge writes to it at that rate.
	r.rd = newMeter(b.cfg.MinTransferRate, b.cfg.TransferGrace, true)
	cc := &timedConn{Conn: tc, peer: "client", timeout: b.cfg.ClientTimeout, written: b.m.toClient,
		end: r.start.Add(b.cfg.RequestTimeout), total: b.cfg.RequestTimeout,
		rd: r.rd, wr: newMeter(b.cfg.MinTransferRate, b.cfg.TransferGrace, true)}
	cm := protocol.NewMux(cc, nil)

	h, err := protocol.ReadRequestHeader(cm.Reader(protocol.Outer))
	if err != nil {
		lr := ""
		if !isProtocolErr(err) {
			lr = b.limitResult(err) // counts the hit
		}
		switch {
		case isProtocolErr(err):
			r.finish(ResultDroppedInvalid, "request dropped: malformed request header", err)
		case lr != "":
			r.finish(lr, "request dropped: the client did not send its request header in time", err)
		default:
			r.finish(ResultPeerError, "request dropped: the client did not send a whole request header", err)
		}
		return
	}
	r.op, r.user, r.payload = h.Op(), h.User(), h.PayloadLen()
	spec, rf := b.checkRequest(h, r.cn)
	if rf != nil {
		r.finish(rf.result, rf.msg, rf.err, rf.extra...)
		return
	}

	t0 := time.Now()
	s, err = b.pool.get(b.cfg.PairingTimeout)
	r.wait = time.Since(t0)
	b.m.wait.Observe(r.wait.Seconds())
	switch {
	case errors.Is(err, errPairingTimeout):
		r.finish(ResultPairingTimeout, "request dropped: no server connection became free in time", nil, "pairing_timeout", b.cfg.PairingTimeout.String())
		return
	case errors.Is(err, errTooManyWaiting):
		b.m.limitHit(LimitPendingPairings)
		r.finish(ResultDroppedPending, "request dropped: too many requests already wait for a server connection (max_pending_pairings)", nil,
			"max_pending_pairings", b.cfg.MaxPendingPairings)
		return
	case err != nil:
		r.finish(ResultShutdown, "request dropped: the bridge is shutting down", nil)
		return
	}
	r.server = s.remote
	r.serverSeq, r.serverReuse = s.served+1, s.reuse
	if s.served > 0 {
		b.m.reusedPairings.Inc()
	}
	maxFetch := spec.BridgeMaxPayload
	if lim, ok := b.cfg.OpLimits[spec.Name]; ok {
		maxFetch = lim
	}
	if spec.SubRequests {
		maxFetch = min(protocol.BridgeMaxSubRequestPayload, b.cfg.MaxRPMsPayloads)
	}
	job := b.newKojiJob(spec, h, maxFetch)
	if job != nil {
		defer job.close()
	}
	kctx, kcancel := context.WithDeadline(context.Background(), r.start.Add(b.cfg.RequestTimeout))
	defer kcancel()
	sc := &timedConn{Conn: s.conn, peer: "server", timeout: b.cfg.ServerTimeout, written: b.m.toServer,
		end: r.start.Add(b.cfg.RequestTimeout), total: b.cfg.RequestTimeout}
	sm := protocol.NewMux(sc, nil)
	closeAll := func() {
		tc.Close()
		s.conn.Close()
	}
	if err := b.relay(kctx, r, spec, h, job, cm, sm, closeAll); err != nil {
		result := ResultPeerError
		var de *dropError
		if errors.As(err, &de) {
			result = de.result
		} else if lr := b.limitResult(err); lr != "" {
			result = lr
		}
		msg := "request dropped during the relay"
		switch result {
		case ResultDroppedKoji:
			msg = "request dropped: it needs Koji and this bridge has no Koji instance configured"
		case ResultKojiImport:
			msg = "request dropped: the server signed but the bridge could not import the signature into Koji; the status the client sees is under the server's MAC, so the bridge can only end the connection"
		}
		r.finish(result, msg, err)
		return
	}
	if s.reuse && b.endServerRequest(r, s, sm) {
		s = nil // back in the pool: not to be closed below
	}
	// Teardown (§2.7): outer EOF to the client, then read from it until its
	// outer EOF or the end of the connection, bounded; then close it, and
	// the server last (the deferred function).
	if err := cm.ChunkWriter().WriteEOF(protocol.Outer); err != nil {
		r.finish(ResultPeerError, "request dropped: writing the final outer EOF to the client failed", err)
		return
	}
	t := time.AfterFunc(b.cfg.ClientTimeout, func() { tc.Close() })
	cm.Drain(protocol.Outer)
	t.Stop()
	r.finish(ResultRelayed, "request relayed", nil)
}

// endServerRequest ends a request on a server connection that has the
// reuse extension, once the relay succeeded: it sends the bridge's outer
// and inner EOF markers if not yet sent, reads the server's (and fails at
// anything else, Mux.AwaitEOF), and returns the connection to the idle
// pool, unless it has carried MaxRequestsPerServerConn requests. It
// reports whether the pool took the connection; if not, the caller closes
// it.
func (b *Bridge) endServerRequest(r *request, s *serverConn, sm *protocol.Mux) bool {
	cw := sm.ChunkWriter()
	for _, st := range []protocol.Stream{protocol.Inner, protocol.Outer} {
		if cw.Ended(st) {
			continue
		}
		if err := cw.WriteEOF(st); err != nil {
			b.log.Warn("server connection closed after the request: writing the bridge's EOF marker failed", "server_addr", s.remote, "op", r.op, "err", err)
			return false
		}
	}
	if err := sm.AwaitEOF(); err != nil {
		b.log.Warn("server connection closed after the request: the server did not end it with its EOF markers alone", "server_addr", s.remote, "op", r.op, "err", err)
		return false
	}
	s.served++
	if s.served >= b.cfg.MaxRequestsPerServerConn {
		b.log.Debug("server connection closed: it carried its maximum of requests", "server_addr", s.remote, "requests", s.served,
			"max_requests_per_server_connection", b.cfg.MaxRequestsPerServerConn)
		return false
	}
	// Idle connections have no deadline (the request's were set on it).
	if err := s.conn.SetDeadline(time.Time{}); err != nil {
		return false
	}
	b.m.serverReturned.Inc()
	b.pool.readd(s)
	return true
}

// relay forwards one paired request: request, inner session, reply, and
// the sign-rpms sub-phase. On error, the caller drops both connections
// without an outer EOF to the client.
func (b *Bridge) relay(ctx context.Context, r *request, spec protocol.OpSpec, h *protocol.RequestHeader, job *kojiJob, cm, sm *protocol.Mux, closeAll func()) error {
	n := h.PayloadLen()
	var payload io.Reader = h.Payload(cm.Reader(protocol.Outer))
	kojiRPM := job != nil && spec.Name == "sign-rpm"
	if kojiRPM {
		// The Koji part of sign-rpm (§7.10): with an empty payload the
		// bridge fetches the RPM; with import-signature it looks it up.
		fe, err := job.prepare(ctx, "", h.Fields(), n == 0)
		switch {
		case err != nil && n > 0:
			// The client's payload hash covers its file: a substitute
			// would make the server drop the request anyway.
			//lint:ignore ST1005 Koji is a proper noun
			return &dropError{result: ResultKojiImport, err: fmt.Errorf("Koji (instance %s): %w", job.name, err)}
		case err != nil:
			b.log.Warn("Koji part of sign-rpm failed: the server will answer KOJI_ERROR", "user", r.user, "koji_instance", job.name, "err", err)
			m := protocol.KojiErrorPayload(err.Error())
			n, payload = uint64(len(m)), bytes.NewReader(m)
		case fe != nil:
			defer fe.Close()
			n, payload = fe.size, fe.f
		}
	}
	// R1‖R2 exactly as received, R3, R4 in chunks of ≤ 4096 (§2.5).
	if err := protocol.WriteCanonicalRequest(sm.ChunkWriter(), h, n, payload); err != nil {
		return fmt.Errorf("forwarding the request: %w", err)
	}
	if r.serverReuse && !spec.SubRequests {
		// The reuse extension's end of request, the bridge's part: its
		// outer EOF once the request is forwarded (without the extension
		// the bridge sends none, §2.7). With sub-requests it follows the
		// last one.
		if err := sm.ChunkWriter().WriteEOF(protocol.Outer); err != nil {
			return fmt.Errorf("forwarding the request: %w", err)
		}
	}
	// From here the client waits for the server (inner session, reply):
	// its silence is not slowness.
	r.rd.set(false)
	// Inner phase: relay verbatim until an inner EOF has passed each way
	// (§5.5). Nothing goes to the client's outer stream meanwhile.
	if err := both(closeAll,
		func() error { return relayInner(cm, sm.ChunkWriter()) },
		func() error { return relayInner(sm, cm.ChunkWriter()) }); err != nil {
		return fmt.Errorf("inner session: %w", err)
	}
	cm.Reader(protocol.Inner).Discard()
	sm.Reader(protocol.Inner).Discard()

	// Reply: Y1‖Y2‖Y3 in one chunk, Y4, Y5 in chunks of ≤ 4096, Y6.
	rh, err := protocol.ReadRelayReplyHeader(sm.Reader(protocol.Outer))
	if err != nil {
		if err == io.EOF {
			return errors.New("the server closed without a reply (it dropped the request)")
		}
		return fmt.Errorf("reading the reply header: %w", err)
	}
	p, err := protocol.NewRelayPayloadReader(sm.Reader(protocol.Outer), b.cfg.MaxReplyPayload, "reply payload")
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	var prefix []byte
	if kojiRPM && job.importSig && rh.Code() == protocol.CodeOK && p.Len() > 0 {
		pre, sighdr, err := readSigHeader(p, p.Len())
		if err != nil {
			return &dropError{result: ResultKojiImport, err: fmt.Errorf("reading the signed RPM's signature header: %w", err)}
		}
		if err := job.importSigHeader(ctx, "", sighdr); err != nil {
			//lint:ignore ST1005 Koji is a proper noun
			return &dropError{result: ResultKojiImport, err: fmt.Errorf("Koji (instance %s): %w", job.name, err)}
		}
		prefix = pre
	}
	if err := relayItemPrefixed(cm.ChunkWriter(), rh.Bytes(), prefix, p, spec.Name != "sign-rpm" || returnData(h)); err != nil {
		return fmt.Errorf("forwarding the reply: %w", err)
	}
	// §14 item 15: no sub-phase after an error reply.
	if spec.SubRequests && rh.Code() == protocol.CodeOK {
		return b.subPhase(ctx, r, h, job, cm, sm, closeAll)
	}
	return nil
}

// both runs f and g concurrently; at the first failure it calls stop (which
// unblocks the other) and returns that failure once both have ended.
func both(stop func(), f, g func() error) error {
	errc := make(chan error, 2)
	go func() { errc <- f() }()
	go func() { errc <- g() }()
	var first error
	for range 2 {
		if err := <-errc; err != nil && first == nil {
			first = err
			stop()
		}
	}
	return first
}

// relayInner forwards the inner chunks of one peer to the other verbatim,
// then the inner EOF. A peer whose connection ends without its inner EOF
// gets one made up, as the reference bridge does (§2.7).
func relayInner(from *protocol.Mux, to *protocol.ChunkWriter) error {
	for {
		b, err := from.Reader(protocol.Inner).ReadChunk()
		if err == io.EOF {
			return to.WriteEOF(protocol.Inner)
		}
		if err != nil {
			return err
		}
		if err := to.WriteChunk(protocol.Inner, b); err != nil {
			return err
		}
	}
}

// relayItem forwards a reply or sub-reply in the canonical layout. Without
// keep (return-data false) the payload is read and dropped, and the item
// goes on with length 0 and the server's original MAC (§6.5, §7.7, §14
// item 5).
func relayItem(w *protocol.ChunkWriter, header []byte, p *protocol.PayloadReader, keep bool) error {
	if keep {
		return protocol.WriteCanonicalItem(w, header, p)
	}
	if err := w.WriteChunk(protocol.Outer, header); err != nil {
		return err
	}
	if err := p.Finish(); err != nil {
		return err
	}
	return protocol.WriteCanonicalPayload(w, 0, nil, p.MAC())
}

// relayItemPrefixed is relayItem for a payload whose first bytes, prefix,
// were already read from p.
func relayItemPrefixed(w *protocol.ChunkWriter, header, prefix []byte, p *protocol.PayloadReader, keep bool) error {
	if len(prefix) == 0 {
		return relayItem(w, header, p, keep)
	}
	if !keep {
		return relayItem(w, header, p, false)
	}
	return protocol.WriteCanonicalItemPrefixed(w, header, prefix, p)
}

// subPhase relays sign-rpms sub-requests and sub-replies at the same time
// (§7.7, §7.12), with the bridge's checks: the sub-request whitelist, id
// uniqueness, P ≤ 1 TiB, the running total, and known ids in sub-replies.
// Sub-requests that need Koji (P = 0) are fetched from it (koji.go); a
// Koji failure for one is forwarded as a KojiErrorPayload, which the
// server answers KOJI_ERROR, and the batch goes on. Without a Koji
// instance they drop the connection. With import-signature each signed
// result's signature header is imported into Koji before it is relayed. With
// head-signing too, sub-requests go on unchanged: the server verifies the
// client's payload MAC over exactly what the client sent (whole packages
// from Sigul's client, headers from signet's), which trimming would break
// (§7.8).
func (b *Bridge) subPhase(ctx context.Context, r *request, h *protocol.RequestHeader, job *kojiJob, cm, sm *protocol.Mux, closeAll func()) error {
	var mu sync.Mutex
	ids := map[string]bool{}
	keep := returnData(h)
	return both(closeAll, func() error {
		in := cm.Reader(protocol.Outer)
		var total uint64
		for n := 0; ; n++ {
			// Between sub-requests the client may pause (client_timeout
			// bounds each pause); within one it must keep the rate.
			r.rd.set(false)
			q, err := protocol.ReadRelaySubRequestHeader(in)
			if err == io.EOF {
				// The client's outer EOF, between two items.
				return sm.ChunkWriter().WriteEOF(protocol.Outer)
			}
			if err != nil {
				return classify(fmt.Errorf("sub-request %d: %w", n, err))
			}
			r.rd.set(true)
			p, err := protocol.NewRelayPayloadReader(in, protocol.BridgeMaxSubRequestPayload, "sub-request payload")
			if err != nil {
				return classify(fmt.Errorf("sub-request %d: %w", n, err))
			}
			if p.Len() == 0 && job == nil {
				return drop(ResultDroppedKoji, "sub-request %d has an empty payload, which asks the bridge to fetch the RPM from Koji", n)
			}
			if err := protocol.ValidateSubRequest(q, p.Len()); err != nil {
				return drop(ResultDroppedInvalid, "sub-request %d: %w", n, err)
			}
			id := string(q.ID())
			mu.Lock()
			seen := ids[id]
			ids[id] = true
			mu.Unlock()
			if seen {
				return drop(ResultDroppedInvalid, "sub-request %d repeats an id", n)
			}
			var fe *fetched
			var kerr error
			if job != nil {
				// Koji's time is not the client's slowness.
				r.rd.set(false)
				fe, kerr = job.prepare(ctx, id, q.Fields(), p.Len() == 0)
				r.rd.set(true)
			}
			size := p.Len()
			if fe != nil {
				size = fe.size
			}
			total += (size + 4095) &^ 4095
			if total > b.cfg.MaxRPMsPayloads {
				fe.Close()
				return drop(ResultDroppedInvalid, "sub-request %d: sign-rpms payloads exceed %d bytes in all", n, b.cfg.MaxRPMsPayloads)
			}
			r.subReqs.Add(1)
			var ferr error
			switch {
			case kerr != nil:
				b.log.Warn("Koji part of a sign-rpms item failed: the server will answer KOJI_ERROR", "user", r.user, "koji_instance", job.name, "item", n, "err", kerr)
				m := protocol.KojiErrorPayload(kerr.Error())
				ferr = forwardReplaced(sm.ChunkWriter(), q.Bytes(), p, uint64(len(m)), bytes.NewReader(m))
			case fe != nil:
				ferr = forwardReplaced(sm.ChunkWriter(), q.Bytes(), p, fe.size, fe.f)
				fe.Close()
			default:
				ferr = protocol.WriteCanonicalItem(sm.ChunkWriter(), q.Bytes(), p)
			}
			if err := ferr; err != nil {
				return fmt.Errorf("forwarding sub-request %d: %w", n, err)
			}
		}
	}, func() error {
		in := sm.Reader(protocol.Outer)
		for n := 0; ; n++ {
			a, err := protocol.ReadRelaySubReplyHeader(in)
			if err == io.EOF {
				return nil // the server's outer EOF: done
			}
			if err != nil {
				return fmt.Errorf("sub-reply %d: %w", n, err)
			}
			mu.Lock()
			known := ids[string(a.ID())]
			mu.Unlock()
			if !known {
				return fmt.Errorf("sub-reply %d answers an id no sub-request carried", n)
			}
			p, err := protocol.NewRelayPayloadReader(in, b.cfg.MaxReplyPayload, "sub-reply payload")
			if err != nil {
				return fmt.Errorf("sub-reply %d: %w", n, err)
			}
			var prefix []byte
			if job != nil && job.importSig && a.Status() == protocol.CodeOK && p.Len() > 0 {
				pre, sighdr, err := readSigHeader(p, p.Len())
				if err != nil {
					return &dropError{result: ResultKojiImport, err: fmt.Errorf("sub-reply %d: reading the signed RPM's signature header: %w", n, err)}
				}
				if err := job.importSigHeader(ctx, string(a.ID()), sighdr); err != nil {
					return &dropError{result: ResultKojiImport, err: fmt.Errorf("sub-reply %d: Koji (instance %s): %w", n, job.name, err)}
				}
				prefix = pre
			}
			if err := relayItemPrefixed(cm.ChunkWriter(), a.Bytes(), prefix, p, keep); err != nil {
				return fmt.Errorf("forwarding sub-reply %d: %w", n, err)
			}
			r.subReps.Add(1)
		}
	})
}

// forwardReplaced forwards a sub-request with its payload replaced by n
// bytes of data (an RPM fetched from Koji, or a KojiErrorPayload): the
// client's payload, if any, is read and dropped, and its MAC forwarded,
// which no longer matches; the server then relies on rpm-sigmd5 (§7.7).
func forwardReplaced(w *protocol.ChunkWriter, header []byte, p *protocol.PayloadReader, n uint64, data io.Reader) error {
	if err := p.Finish(); err != nil {
		return err
	}
	if err := w.WriteChunk(protocol.Outer, header); err != nil {
		return err
	}
	return protocol.WriteCanonicalPayload(w, n, data, p.MAC())
}

// classify marks protocol failures of the client's sub-requests as invalid.
func classify(err error) error {
	if isProtocolErr(err) {
		return &dropError{result: ResultDroppedInvalid, err: err}
	}
	return err
}
