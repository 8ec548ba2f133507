// Package protocol implements the wire format of Sigul protocol version 1,
// byte for byte, as specified in shared/docs/PROTOCOL-v1.md (section
// numbers in comments refer to it): chunk framing of the outer and inner
// streams (§2), field blocks (§3), requests (§4), the inner TLS session and
// its message (§5), replies with their HMAC-SHA512 MACs (§6), and the
// sign-rpms sub-protocol with its derived keys (§7). It also holds the
// per-operation whitelist and limits of §4.4 as data (Ops, LookupOp,
// ValidateRequest).
//
// The package knows nothing of keys, tokens, formats, Koji or
// configuration; it imports only the standard library. Every length read
// from the wire is checked against the specification's limit (or the
// caller's) before anything is allocated for it, and payloads are streamed,
// never buffered whole. MACs and hashes are compared in constant time, and a
// failed check is an *IntegrityError (errors.Is(err, ErrIntegrity)).
//
// # Layers
//
//   - ChunkReader, ChunkWriter: raw chunks of one direction of an outer TLS
//     connection.
//   - Mux: both streams of one outer connection. Mux.Reader(Outer) and
//     Mux.Reader(Inner) are independent io.Readers; data of the stream not
//     being read is buffered, bounded. Mux.Writer gives io.Writers that
//     chunk; Mux.ChunkWriter writes exact chunk layouts. Mux.InnerConn is a
//     net.Conn over the inner stream for crypto/tls.
//   - Fields: field blocks and their typed values.
//   - RequestHeader, InnerMessage, ReplyHeader, PayloadReader: the items.
//   - SubRequestWriter/Reader, SubReplyWriter/Reader: sign-rpms items,
//     numbered and keyed per §7.4 and §7.5.
//   - WriteCanonicalRequest, WriteCanonicalItem, WriteCanonicalPayload: the
//     reference bridge's chunk layout (§2.5).
//
// # Client, one request
//
//	m := protocol.NewMux(outerTLS, nil)            // TLS to the bridge
//	inner := tls.Client(m.InnerConn(), innerCfg)    // peer: the server
//	hs := make(chan error, 1)
//	go func() { hs <- inner.Handshake() }()         // ClientHello goes first (§16.1)
//	h, _ := protocol.NewRequestHeader(fields, uint64(size))
//	psum, _ := protocol.WriteRequest(m.Writer(protocol.Outer), h, file)
//	<-hs
//	keys, _ := protocol.GenerateReplyKeys(nil)
//	msg, _ := protocol.NewInnerMessage(h, psum, keys)
//	msg.Fields.Set("passphrase", pw)
//	b, _ := msg.MarshalBinary()
//	inner.Write(b); inner.Close()                   // close_notify + inner EOF, at once (§5.5)
//	rh, _ := protocol.ReadReplyHeader(m.Reader(protocol.Outer), keys.Header)
//	p, _ := protocol.NewPayloadReader(m.Reader(protocol.Outer), keys.Payload, max, "reply payload")
//	io.Copy(tmp, p)                                 // io.EOF only after Y6 verified
//	m.Writer(protocol.Outer).Close()                // outer EOF
//	m.Drain(protocol.Outer)                         // until the bridge's EOF (§2.7)
//
// # Bridge, one request
//
//	cm, sm := protocol.NewMux(clientTLS, nil), protocol.NewMux(serverTLS, nil)
//	h, err := protocol.ReadRequestHeader(cm.Reader(protocol.Outer)) // drop on error
//	spec, err := protocol.ValidateRequest(h)                         // drop on error
//	protocol.WriteCanonicalRequest(sm.ChunkWriter(), h, h.PayloadLen(), h.Payload(cm.Reader(protocol.Outer)))
//	// relay inner chunks both ways until both inner EOFs (§5.5), in two goroutines:
//	//   b, err := cm.Reader(protocol.Inner).ReadChunk(); sm.ChunkWriter().WriteChunk(protocol.Inner, b)
//	//   at io.EOF: sm.ChunkWriter().WriteEOF(protocol.Inner)
//	rh, err := protocol.ReadRelayReplyHeader(sm.Reader(protocol.Outer))
//	p, err := protocol.NewRelayPayloadReader(sm.Reader(protocol.Outer), max, "reply payload")
//	protocol.WriteCanonicalItem(cm.ChunkWriter(), rh.Bytes(), p)
//	cm.ChunkWriter().WriteEOF(protocol.Outer)
//	cm.Drain(protocol.Outer)                        // then close C, then S (§2.7)
//
// # Server, one request
//
//	m := protocol.NewMux(outerTLS, nil)
//	h, err := protocol.ReadRequestHeader(m.Reader(protocol.Outer)) // *VersionError: see §4.3 step 1
//	pr := h.Payload(m.Reader(protocol.Outer))
//	io.Copy(spool, pr)                              // after the payload-class check of §4.3
//	inner := tls.Server(m.InnerConn(), innerCfg)
//	msg, err := protocol.ReadInnerMessage(inner)
//	inner.Close()                                   // close_notify + inner EOF, before the reply
//	authenticated, err := msg.Verify(h, pr.SHA512()) // drop on error
//	keys, _ := msg.ReplyKeys()
//	protocol.WriteReply(m.Writer(protocol.Outer), keys, code, fields, n, result)
//	m.Writer(protocol.Outer).Close()
//	m.Drain()                                       // until the bridge closes
package protocol
