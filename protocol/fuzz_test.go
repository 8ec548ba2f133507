package protocol

// Fuzz targets, one per decoder. Each asserts properties, not just the
// absence of panics: decode -> encode gives the bytes back, limits hold,
// errors fall in the documented classes, and the verifying and relaying
// decoders agree. Seed corpora (from the golden captures and the named
// vectors) are in testdata/fuzz/<FuzzName>/; regenerate them with
// go test ./protocol -run TestVectorFiles -update.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func oneOf(t *testing.T, err error, classes ...string) {
	t.Helper()
	c := classify(err)
	for _, want := range classes {
		if c == want {
			return
		}
	}
	t.Fatalf("error class %q (%v) not in %v", c, err, classes)
}

func FuzzChunkReader(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 3, 1, 2, 3, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0x80, 0, 0, 0})
	f.Fuzz(checkChunkReader)
}

func checkChunkReader(t *testing.T, data []byte) {
	// Raw chunk parse, streaming the data.
	// Every buffer is sized from the input up front, so that an execution
	// costs a few allocations rather than a growth series per chunk: the
	// fuzzer's rate depends on it (the seeds are whole captured sessions).
	cr := NewChunkReader(bytes.NewReader(data))
	re := make([]byte, 0, len(data)+chunkHeaderLen)
	streams := [2][]byte{make([]byte, 0, len(data)), make([]byte, 0, len(data))}
	var chunks [2][][]byte
	var ended [2]bool
	var rawErr error
	for {
		h, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			rawErr = err
			break
		}
		s := h.Stream()
		if ended[s] {
			t.Fatalf("%s chunk after its EOF accepted", s)
		}
		start := len(streams[s])
		streams[s], err = readAllInto(streams[s], cr)
		d := streams[s][start:len(streams[s]):len(streams[s])]
		if err != nil {
			rawErr = err
			break
		}
		if len(d) != h.Len() {
			t.Fatalf("chunk %s delivered %d bytes", h, len(d))
		}
		if h.IsEOF() {
			ended[s] = true
		} else {
			chunks[s] = append(chunks[s], d)
		}
		re, _ = Chunk{Stream: s, Data: d}.AppendBinary(re)
	}
	if !bytes.HasPrefix(data, re) {
		t.Fatal("re-encoded chunks are not a prefix of the input")
	}
	if rawErr == nil && !bytes.Equal(re, data) {
		t.Fatal("clean parse does not re-encode to the input")
	}
	if rawErr != nil {
		oneOf(t, rawErr, "malformed", "unexpected-eof")
	}

	// The Mux, reading one stream after the other.
	for _, innerFirst := range []bool{false, true} {
		m := NewMux(readOnly(iotest.HalfReader(bytes.NewReader(data))), &MuxConfig{MaxBuffered: MinChunkAccept})
		outer, inner := make([]byte, 0, len(data)), make([]byte, 0, len(data))
		var innerChunks [][]byte
		var oerr, ierr error
		readInner := func() {
			for {
				b, err := m.Reader(Inner).ReadChunk()
				if err != nil {
					if err != io.EOF {
						ierr = err
					}
					return
				}
				if len(b) == 0 || len(b) > MinChunkAccept {
					t.Fatalf("ReadChunk returned %d bytes", len(b))
				}
				inner = append(inner, b...)
				innerChunks = append(innerChunks, b)
			}
		}
		if innerFirst {
			readInner()
		}
		outer, oerr = readAllInto(outer, m.Reader(Outer))
		if m.Reader(Inner).Buffered() > MinChunkAccept || m.Reader(Outer).Buffered() > MinChunkAccept {
			t.Fatal("buffer limit exceeded")
		}
		if !innerFirst {
			readInner()
		}
		if !bytes.HasPrefix(streams[Outer], outer) || !bytes.HasPrefix(streams[Inner], inner) {
			t.Fatal("Mux delivered data the raw parse did not")
		}
		if rawErr == nil {
			if oerr != nil || ierr != nil || !bytes.Equal(outer, streams[Outer]) || !bytes.Equal(inner, streams[Inner]) {
				t.Fatalf("Mux disagrees with a clean raw parse: %v / %v", oerr, ierr)
			}
			if len(innerChunks) != len(chunks[Inner]) {
				t.Fatalf("inner chunk boundaries: %d, want %d", len(innerChunks), len(chunks[Inner]))
			}
			for i := range innerChunks {
				if !bytes.Equal(innerChunks[i], chunks[Inner][i]) {
					t.Fatalf("inner chunk %d differs", i)
				}
			}
			if m.Reader(Outer).EndedByMarker() != ended[Outer] || m.Reader(Inner).EndedByMarker() != ended[Inner] {
				t.Fatal("EOF markers disagree")
			}
		} else if !(ended[Outer] && ended[Inner]) && oerr == nil && ierr == nil {
			t.Fatalf("Mux missed the error %v", rawErr)
		}
		for _, err := range []error{oerr, ierr} {
			if err != nil {
				oneOf(t, err, "malformed", "unexpected-eof")
			}
		}
	}
}

// readAllInto is io.ReadAll appending to dst, which it grows only when its
// capacity runs out.
func readAllInto(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

func FuzzFields(f *testing.F) {
	f.Add([]byte{1, 2, 'o', 'p', 1, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, n, err := decodeFields(data)
		fs2, raw, err2 := ReadFields(iotest.OneByteReader(bytes.NewReader(data)))
		if classify(err) != classify(err2) {
			t.Fatalf("DecodeFields %v, ReadFields %v", err, err2)
		}
		var whole Fields
		werr := whole.UnmarshalBinary(data)
		if err != nil {
			oneOf(t, err, "malformed", "unexpected-eof", "eof")
			if werr == nil {
				t.Fatal("UnmarshalBinary accepted what DecodeFields refused")
			}
			return
		}
		if n > maxFieldBlockLen || n > len(data) || n < 1 {
			t.Fatalf("consumed %d bytes", n)
		}
		if !bytes.Equal(raw, data[:n]) || len(fs2) != len(fs) {
			t.Fatal("ReadFields disagrees")
		}
		if (werr == nil) != (n == len(data)) {
			t.Fatalf("UnmarshalBinary: %v with %d of %d bytes used", werr, n, len(data))
		}
		enc, err := fs.MarshalBinary()
		if err != nil || !bytes.Equal(enc, data[:n]) {
			t.Fatalf("round trip: %v", err)
		}
		if len(fs) > maxFields {
			t.Fatal("too many fields")
		}
		seen := map[string]bool{}
		for _, fl := range fs {
			if len(fl.Key) < 1 || len(fl.Key) > maxKeyLen || !IsSafeString(fl.Key) || seen[fl.Key] || len(fl.Value) > maxValueLen {
				t.Fatalf("bad key %q accepted", fl.Key)
			}
			seen[fl.Key] = true
			if s, err := fs.Str(fl.Key); err == nil && (!IsSafeString(s) || s != string(fl.Value)) {
				t.Fatal("Str")
			}
			if v, err := fs.U32(fl.Key); err == nil && (len(fl.Value) != 4 || binary.BigEndian.Uint32(fl.Value) != v) {
				t.Fatal("U32")
			}
			if b, err := fs.Bool(fl.Key); err == nil && (len(fl.Value) != 1 || fl.Value[0] > 1 || b != (fl.Value[0] == 1)) {
				t.Fatal("Bool")
			}
			if d, err := fs.Date(fl.Key); err == nil && d.Format("2006-01-02") != string(fl.Value) {
				t.Fatal("Date")
			}
			fs.Enum(fl.Key, "ca", "codesigning")
		}
	})
}

func FuzzRequestHeader(f *testing.F) {
	f.Add(requestBytes(f, "op", "list-keys", "user", "admin"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := ReadRequestHeader(r)
		consumed := len(data) - r.Len()
		if err != nil {
			oneOf(t, err, "unknown-version", "malformed", "unexpected-eof", "eof")
			if errors.Is(err, ErrUnknownVersion) && consumed != 4 {
				t.Fatalf("read %d bytes after a bad version", consumed)
			}
			return
		}
		enc, _ := h.MarshalBinary()
		if !bytes.Equal(enc, data[:consumed]) || !bytes.Equal(h.HeaderBytes(), data[:consumed-8]) || h.Version() != protocolVersion {
			t.Fatal("round trip")
		}
		sum := sha512.Sum512(data[:consumed-8])
		if !bytes.Equal(h.SHA512(), sum[:]) {
			t.Fatal("SHA512")
		}
		if consumed > 4+maxFieldBlockLen+8 {
			t.Fatal("header longer than possible")
		}
		if h2, err := NewRequestHeader(h.Fields(), h.PayloadLen()); err == nil {
			if enc2, _ := h2.MarshalBinary(); !bytes.Equal(enc2, enc) {
				t.Fatal("NewRequestHeader encodes differently")
			}
		} else if h.Op() != "" && h.User() != "" {
			t.Fatalf("NewRequestHeader refused a decoded header with op and user: %v", err)
		}
		spec, verr := ValidateRequest(h)
		if verr == nil {
			if _, ok := LookupOp(h.Op()); !ok || h.PayloadLen() > spec.BridgeMaxPayload {
				t.Fatal("ValidateRequest accepted an unknown op or a payload over the limit")
			}
			for _, fl := range h.Fields() {
				if _, ok := spec.Field(fl.Key); !ok && fl.Key != FieldOp && fl.Key != FieldUser {
					t.Fatalf("field %q not on the whitelist accepted", fl.Key)
				}
			}
		} else {
			oneOf(t, verr, "unknown-op", "field-not-allowed", "missing-field", "invalid-field", "limit")
		}
		p := h.Payload(r)
		got, err := io.ReadAll(p)
		if h.PayloadLen() <= uint64(len(data)-consumed) {
			if err != nil || !bytes.Equal(got, data[consumed:consumed+len(got)]) || uint64(len(got)) != h.PayloadLen() {
				t.Fatalf("payload: %v", err)
			}
			psum := sha512.Sum512(got)
			if !bytes.Equal(p.SHA512(), psum[:]) {
				t.Fatal("payload SHA512")
			}
		} else {
			oneOf(t, err, "unexpected-eof")
		}
	})
}

var fuzzRequest = func() *RequestHeader {
	h, _ := ReadRequestHeader(bytes.NewReader([]byte("\x00\x00\x00\x01\x02\x02op\x09list-keys\x04user\x05admin\x00\x00\x00\x00\x00\x00\x00\x00")))
	return h
}()

func FuzzInnerMessage(f *testing.F) {
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseInnerMessage(data)
		m2, rerr := ReadInnerMessage(iotest.OneByteReader(bytes.NewReader(data)))
		if err != nil {
			oneOf(t, err, "malformed", "unexpected-eof", "eof")
			if c := classify(err); (c == "unexpected-eof" || c == "eof") && rerr == nil {
				t.Fatal("ReadInnerMessage accepted a cut block")
			}
			return
		}
		if rerr != nil || len(m2.Fields) != len(m.Fields) {
			t.Fatalf("ReadInnerMessage: %v", rerr)
		}
		enc, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatal("round trip")
		}
		empty := sha512.Sum512(nil)
		ok, err := m.Verify(fuzzRequest, empty[:])
		if err == nil {
			got, _ := m.Fields.Lookup(fieldHeaderAuthSHA512)
			pay, _ := m.Fields.Lookup(fieldPayloadAuthSHA512)
			k, kerr := m.ReplyKeys()
			if !ok || !bytes.Equal(got, fuzzRequest.SHA512()) || !bytes.Equal(pay, empty[:]) || kerr != nil || len(k.Header) < minKeyLen || len(k.Payload) < minKeyLen {
				t.Fatal("Verify accepted a message it should not")
			}
		} else {
			oneOf(t, err, "integrity", "missing-field", "short-key")
		}
		if sk, err := m.SubKeys(); err == nil {
			for _, kv := range sk.named() {
				if len(kv.v) < minKeyLen {
					t.Fatal("short sub key accepted")
				}
			}
		}
	})
}

// fuzzItem is the common body of the reply and sub-protocol fuzzers: it
// decodes data with the verifying decoder and with the relay decoder and
// checks that they agree and that what was accepted re-encodes exactly.
type itemCodec struct {
	verified func(r io.Reader) (fields Fields, signed []byte, p *PayloadReader, err error)
	relay    func(r io.Reader) (signed, mac []byte, err error)
	hkey     []byte
	pkey     []byte
	encode   func(fields Fields, signed []byte, payload []byte) ([]byte, error)
}

const fuzzMaxPayload = 1 << 16

func fuzzItem(t *testing.T, data []byte, c itemCodec) {
	// Relay decode: structure only.
	r2 := bytes.NewReader(data)
	signed, mac, rerr := c.relay(r2)
	var d []byte
	var p2 *PayloadReader
	if rerr == nil {
		p2, rerr = NewRelayPayloadReader(r2, fuzzMaxPayload, "payload")
		if rerr == nil {
			d, rerr = io.ReadAll(p2)
			if rerr == nil && uint64(len(d)) != p2.Len() {
				t.Fatal("relay payload length")
			}
		}
	}
	relayConsumed := len(data) - r2.Len()
	if rerr == nil {
		rebuilt := append(append(bytes.Clone(signed), mac...), binary.BigEndian.AppendUint64(nil, uint64(len(d)))...)
		rebuilt = append(append(rebuilt, d...), p2.MAC()...)
		if !bytes.Equal(rebuilt, data[:relayConsumed]) {
			t.Fatal("relay decode does not re-encode")
		}
	} else {
		// unknown-version: a reply that is the bare code 1 then the end
		// of the stream (§9).
		oneOf(t, rerr, "malformed", "unexpected-eof", "eof", "limit", "missing-field", "invalid-field", "unknown-version")
	}

	// Verifying decode.
	r := bytes.NewReader(data)
	fields, vsigned, p, err := c.verified(r)
	var payload []byte
	if err == nil {
		payload, err = io.ReadAll(p)
	}
	consumed := len(data) - r.Len()
	if rerr != nil {
		if err == nil {
			t.Fatal("verifying decoder accepted what the relay decoder refused")
		}
		return
	}
	macsOK := hmac.Equal(MAC(c.hkey, signed), mac) && hmac.Equal(MAC(c.pkey, d), p2.MAC())
	if macsOK != (err == nil) {
		t.Fatalf("MACs ok = %v but verifying decode: %v", macsOK, err)
	}
	if err != nil {
		oneOf(t, err, "integrity")
		return
	}
	if consumed != relayConsumed || !bytes.Equal(payload, d) || !bytes.Equal(vsigned, signed) || !p.verified() {
		t.Fatal("verifying and relay decoders disagree")
	}
	enc, err := c.encode(fields, signed, payload)
	if err != nil || !bytes.Equal(enc, data[:consumed]) {
		t.Fatalf("re-encode: %v", err)
	}
}

func FuzzReply(f *testing.F) {
	keys := ReplyKeys{Header: rep(0x11, 64), Payload: rep(0x22, 64)}
	b, _ := encodeReply(keys, CodeOK, nil, []byte("x"))
	f.Add(b, keys.Header, keys.Payload)
	f.Fuzz(func(t *testing.T, data, hk, pk []byte) {
		if len(hk) == 0 || len(pk) == 0 {
			return
		}
		keys := ReplyKeys{Header: hk, Payload: pk}
		fuzzItem(t, data, itemCodec{
			hkey: hk, pkey: pk,
			relay: func(r io.Reader) ([]byte, []byte, error) {
				h, err := ReadRelayReplyHeader(r)
				if err != nil {
					return nil, nil, err
				}
				return h.signed(), h.MAC(), nil
			},
			verified: func(r io.Reader) (Fields, []byte, *PayloadReader, error) {
				h, err := ReadReplyHeader(r, hk)
				if err != nil {
					return nil, nil, nil, err
				}
				p, err := NewPayloadReader(r, pk, fuzzMaxPayload, "reply payload")
				return h.Fields(), h.signed(), p, err
			},
			encode: func(fields Fields, signed, payload []byte) ([]byte, error) {
				return encodeReply(keys, ErrorCode(binary.BigEndian.Uint32(signed)), fields, payload)
			},
		})
		// ReadReply agrees with the pieces.
		h, payload, err := ReadReply(bytes.NewReader(data), keys, fuzzMaxPayload)
		if err == nil {
			enc, _ := encodeReply(keys, h.Code(), h.Fields(), payload)
			if !bytes.HasPrefix(data, enc) {
				t.Fatal("ReadReply re-encode")
			}
			_ = h.Err()
			_ = h.Code().String() + h.Code().Text()
		}
	})
}

func FuzzSubRequest(f *testing.F) {
	k := SubKeys{RequestHeader: rep(0x33, 64), RequestPayload: rep(0x44, 64)}
	var fs Fields
	fs.SetU32(FieldID, 0)
	b, _ := encodeSubRequest(k, 0, fs, []byte("rpm"))
	f.Add(b, k.RequestHeader, k.RequestPayload, uint32(0))
	f.Fuzz(func(t *testing.T, data, bh, bp []byte, seq uint32) {
		if len(bh) == 0 || len(bp) == 0 {
			return
		}
		keys := SubKeys{RequestHeader: bh, RequestPayload: bp}
		d := keys.forIndex(seq)
		fuzzItem(t, data, itemCodec{
			hkey: d.RequestHeader, pkey: d.RequestPayload,
			relay: func(r io.Reader) ([]byte, []byte, error) {
				h, err := ReadRelaySubRequestHeader(r)
				if err != nil {
					return nil, nil, err
				}
				_ = ValidateSubRequest(h, 0)
				return h.signed(), h.MAC(), nil
			},
			verified: func(r io.Reader) (Fields, []byte, *PayloadReader, error) {
				h, err := readSubRequestHeader(r, d.RequestHeader)
				if err != nil {
					return nil, nil, nil, err
				}
				p, err := NewPayloadReader(r, d.RequestPayload, fuzzMaxPayload, "sub-request payload")
				return h.Fields(), h.signed(), p, err
			},
			encode: func(fields Fields, _, payload []byte) ([]byte, error) {
				return encodeSubRequest(keys, seq, fields, payload)
			},
		})
		if seq == 0 {
			// The sequenced reader agrees on the header verdict.
			_, herr := readSubRequestHeader(bytes.NewReader(data), d.RequestHeader)
			_, serr := NewSubRequestReader(bytes.NewReader(data), keys, fuzzMaxPayload).Next()
			if herr != nil && classify(herr) != classify(serr) {
				t.Fatalf("SubRequestReader %v, ReadSubRequestHeader %v", serr, herr)
			}
			if herr == nil && serr != nil {
				oneOf(t, serr, "limit", "unexpected-eof")
			}
		}
	})
}

func FuzzSubReply(f *testing.F) {
	k := SubKeys{ReplyHeader: rep(0x33, 64), ReplyPayload: rep(0x44, 64)}
	fs, _ := SubReplyFields([]byte{0, 0, 0, 0}, CodeOK)
	b, _ := encodeSubReply(k, 0, fs, []byte("signed"))
	f.Add(b, k.ReplyHeader, k.ReplyPayload, uint32(0))
	f.Fuzz(func(t *testing.T, data, bh, bp []byte, seq uint32) {
		if len(bh) == 0 || len(bp) == 0 {
			return
		}
		keys := SubKeys{ReplyHeader: bh, ReplyPayload: bp}
		d := keys.forIndex(seq)
		fuzzItem(t, data, itemCodec{
			hkey: d.ReplyHeader, pkey: d.ReplyPayload,
			relay: func(r io.Reader) ([]byte, []byte, error) {
				h, err := ReadRelaySubReplyHeader(r)
				if err != nil {
					return nil, nil, err
				}
				if len(h.ID()) == 0 && !h.Fields().Has(FieldID) {
					t.Fatal("sub-reply without id accepted")
				}
				_ = h.Status().String()
				return h.signed(), h.MAC(), nil
			},
			verified: func(r io.Reader) (Fields, []byte, *PayloadReader, error) {
				h, err := readSubReplyHeader(r, d.ReplyHeader)
				if err != nil {
					return nil, nil, nil, err
				}
				p, err := NewPayloadReader(r, d.ReplyPayload, fuzzMaxPayload, "sub-reply payload")
				return h.Fields(), h.signed(), p, err
			},
			encode: func(fields Fields, _, payload []byte) ([]byte, error) {
				return encodeSubReply(keys, seq, fields, payload)
			},
		})
	})
}
