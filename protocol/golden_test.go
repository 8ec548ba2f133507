package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/iotest"
)

// The golden streams of real Sigul 1.2 traffic, testdata/sigul-v1/raw/.
const goldenDir = "testdata/sigul-v1/raw"

type golden struct {
	name  string
	dir   string
	keys  map[string][]byte
	inner []byte // inner-block.redacted.bin
}

func (g *golden) replyKeys() ReplyKeys {
	return ReplyKeys{Header: g.keys[fieldHeaderAuthKey], Payload: g.keys[fieldPayloadAuthKey]}
}

func (g *golden) subKeys() SubKeys {
	return SubKeys{
		RequestHeader:  g.keys[fieldSubRequestHeaderAuthKey],
		RequestPayload: g.keys[fieldSubRequestPayloadAuthKey],
		ReplyHeader:    g.keys[fieldSubReplyHeaderAuthKey],
		ReplyPayload:   g.keys[fieldSubReplyPayloadAuthKey],
	}
}

func (g *golden) leg(t testing.TB, leg string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.dir, leg+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadGoldens(t testing.TB) []*golden {
	t.Helper()
	ents, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*golden
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		g := &golden{name: e.Name(), dir: filepath.Join(goldenDir, e.Name()), keys: map[string][]byte{}}
		kj, err := os.ReadFile(filepath.Join(g.dir, "keys.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(kj, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			if k[0] == '_' {
				continue
			}
			b, err := hex.DecodeString(v)
			if err != nil {
				t.Fatalf("%s keys.json %s: %v", g.name, k, err)
			}
			g.keys[k] = b
		}
		if g.inner, err = os.ReadFile(filepath.Join(g.dir, "inner-block.redacted.bin")); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	if len(out) != 9 {
		t.Fatalf("found %d golden captures, want 9", len(out))
	}
	return out
}

// parsed is one leg split with the raw ChunkReader.
type parsed struct {
	chunks   []Chunk
	outer    []byte
	outerCh  []Chunk // outer chunks only, EOF marker included
	innerCh  []Chunk // inner chunks only, EOF marker included
	outerEOF bool
	innerEOF bool
}

func parseLeg(t testing.TB, b []byte) parsed {
	t.Helper()
	var p parsed
	cr := NewChunkReader(bytes.NewReader(b))
	for {
		c, err := cr.ReadChunk(MaxChunkLen)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chunk %d: %v", len(p.chunks), err)
		}
		p.chunks = append(p.chunks, c)
		if c.Stream == Outer {
			p.outer = append(p.outer, c.Data...)
			p.outerCh = append(p.outerCh, c)
			p.outerEOF = p.outerEOF || c.IsEOF()
		} else {
			p.innerCh = append(p.innerCh, c)
			p.innerEOF = p.innerEOF || c.IsEOF()
		}
	}
	// Re-encoding the chunks gives the stream back exactly.
	var re []byte
	for _, c := range p.chunks {
		var err error
		if re, err = c.AppendBinary(re); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(re, b) {
		t.Fatal("chunks do not re-encode to the stream")
	}
	return p
}

func sameChunks(t *testing.T, what string, got, want []Chunk) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d chunks, want %d\n got %s\nwant %s", what, len(got), len(want), chunkList(got), chunkList(want))
	}
	for i := range got {
		if got[i].Stream != want[i].Stream || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("%s: chunk %d differs\n got %s\nwant %s", what, i, chunkList(got), chunkList(want))
		}
	}
}

func chunkList(cs []Chunk) string {
	var b bytes.Buffer
	for _, c := range cs {
		h, _ := MakeChunkHeader(c.Stream, len(c.Data))
		fmt.Fprintf(&b, "[%s] ", h)
	}
	return b.String()
}

// item is one decoded outer item with enough to re-encode it.
type item struct {
	header []byte // R1||R2||R3 for a request; header incl. MAC otherwise
	data   []byte
	mac    []byte // payload MAC as on the wire (nil for a request)
}

// decodeRequestLeg decodes c2b or b2s completely and checks every hash and
// MAC. It returns the items and the sub-request payload MAC errors.
func decodeRequestLeg(t *testing.T, g *golden, p parsed, leg string) (*RequestHeader, []item, map[uint32]error) {
	r := bytes.NewReader(p.outer)
	h, err := ReadRequestHeader(r)
	must(t, err)
	spec, err := ValidateRequest(h)
	if err != nil {
		t.Fatalf("bridge whitelist refuses the real request: %v", err)
	}
	if !bytes.Equal(h.SHA512(), g.keys[fieldHeaderAuthSHA512]) {
		t.Fatal("SHA-512(R1||R2) differs from header-auth-sha512")
	}
	pr := h.Payload(r)
	data, err := io.ReadAll(pr)
	must(t, err)
	if !bytes.Equal(pr.SHA512(), g.keys[fieldPayloadAuthSHA512]) {
		t.Fatal("SHA-512(R4) differs from payload-auth-sha512")
	}
	hb, _ := h.MarshalBinary()
	items := []item{{header: hb, data: data}}
	macErrs := map[uint32]error{}
	if spec.SubRequests {
		sr := NewSubRequestReader(r, g.subKeys(), DefaultMaxFilePayload)
		for {
			s, err := sr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			if err := ValidateSubRequest(s.Header, s.Payload.Len()); err != nil {
				t.Fatalf("sub-request %d: bridge whitelist: %v", s.Seq, err)
			}
			id, _ := s.Header.Fields().U32(FieldID)
			if id != s.Seq {
				t.Fatalf("sub-request %d has id %d", s.Seq, id)
			}
			d, err := io.ReadAll(s.Payload)
			if err != nil {
				if !errors.Is(err, ErrIntegrity) {
					t.Fatalf("sub-request %d payload: %v", s.Seq, err)
				}
				macErrs[s.Seq] = err
			}
			items = append(items, item{header: s.Header.Bytes(), data: d, mac: s.Payload.MAC()})
		}
		if !p.outerEOF {
			t.Fatalf("%s: sign-rpms sub-requests not ended by an outer EOF", leg)
		}
	}
	if r.Len() != 0 {
		t.Fatalf("%s: %d outer bytes after the last item", leg, r.Len())
	}
	return h, items, macErrs
}

func TestGoldenRequests(t *testing.T) {
	for _, g := range loadGoldens(t) {
		t.Run(g.name, func(t *testing.T) {
			c2b := parseLeg(t, g.leg(t, "c2b"))
			b2s := parseLeg(t, g.leg(t, "b2s"))
			hc, itemsC, errsC := decodeRequestLeg(t, g, c2b, "c2b")
			hs, itemsS, errsS := decodeRequestLeg(t, g, b2s, "b2s")
			if len(errsC) != 0 {
				t.Fatalf("client's sub-request payload MACs fail: %v", errsC)
			}
			// Only the trimmed head-signing RPM may fail at the server (§7.7, §7.8).
			wantS := 0
			if g.name == "x-sign-rpms-head-bigrpm" {
				wantS = 1
				if !errors.Is(errsS[1], ErrIntegrity) || itemsS[2].mac == nil || !bytes.Equal(itemsS[2].mac, itemsC[2].mac) {
					t.Fatalf("bigrpm: want sub-request 1's payload MAC to fail at the server, with C's MAC forwarded: %v", errsS)
				}
				if len(itemsS[2].data) != 8192 || !bytes.HasPrefix(itemsC[2].data, itemsS[2].data) {
					t.Fatalf("bigrpm: server got %d bytes, want an 8192-byte prefix", len(itemsS[2].data))
				}
			}
			if len(errsS) != wantS {
				t.Fatalf("server-side sub-request MAC failures: %v", errsS)
			}
			// B forwards R1||R2 byte-identically (§4.2 step 7).
			if !bytes.Equal(hc.HeaderBytes(), hs.HeaderBytes()) {
				t.Fatal("bridge changed R1||R2")
			}

			// Re-encode every item with this package and compare with
			// the outer stream of both legs.
			for leg, pl := range map[string]struct {
				p     parsed
				items []item
				bad   map[uint32]error
			}{"c2b": {c2b, itemsC, errsC}, "b2s": {b2s, itemsS, errsS}} {
				var re []byte
				re = append(re, pl.items[0].header...)
				re = append(re, pl.items[0].data...)
				for i, it := range pl.items[1:] {
					n := uint32(i)
					if pl.bad[n] != nil {
						re = append(re, it.header...)
						re = binary.BigEndian.AppendUint64(re, uint64(len(it.data)))
						re = append(append(re, it.data...), it.mac...)
						continue
					}
					hdr, err := ReadRelaySubRequestHeader(bytes.NewReader(it.header))
					must(t, err)
					enc, err := encodeSubRequest(g.subKeys(), n, hdr.Fields(), it.data)
					must(t, err)
					re = append(re, enc...)
				}
				if !bytes.Equal(re, pl.p.outer) {
					t.Fatalf("%s: re-encoded outer stream differs", leg)
				}
			}

			// B->S uses the reference bridge's canonical chunking (§2.5).
			var buf bytes.Buffer
			cw := NewChunkWriter(&buf)
			must(t, WriteCanonicalRequest(cw, hs, hs.PayloadLen(), bytes.NewReader(itemsS[0].data)))
			for _, it := range itemsS[1:] {
				must(t, cw.WriteChunk(Outer, it.header))
				must(t, WriteCanonicalPayload(cw, uint64(len(it.data)), bytes.NewReader(it.data), it.mac))
			}
			if b2s.outerEOF {
				must(t, cw.WriteEOF(Outer))
			}
			sameChunks(t, "b2s outer chunks", parseLeg(t, buf.Bytes()).outerCh, b2s.outerCh)
			if hs.Op() != "sign-rpms" && b2s.outerEOF {
				t.Fatal("the bridge sent S an outer EOF in an ordinary request")
			}
			if !c2b.outerEOF {
				t.Fatal("c2b: no outer EOF from the client")
			}
			// Inner chunks are relayed verbatim, EOF included (§5.1).
			sameChunks(t, "b2s inner chunks vs c2b", b2s.innerCh, c2b.innerCh)
			if !c2b.innerEOF {
				t.Fatal("no inner EOF from the client")
			}
			// §16.1: the client's first chunk is inner (the ClientHello).
			if c2b.chunks[0].Stream != Inner || b2s.chunks[0].Stream != Outer {
				t.Fatal("expected C's first chunk inner and B's first chunk to S outer")
			}

			// The inner block.
			msg, err := parseInnerMessage(g.inner)
			must(t, err)
			enc, err := msg.MarshalBinary()
			must(t, err)
			if !bytes.Equal(enc, g.inner) {
				t.Fatal("inner block does not re-encode")
			}
			ok, err := msg.Verify(hs, g.keys[fieldPayloadAuthSHA512])
			if err != nil || !ok {
				t.Fatalf("inner Verify: %v %v", ok, err)
			}
			rk, err := msg.ReplyKeys()
			must(t, err)
			if !bytes.Equal(rk.Header, g.keys[fieldHeaderAuthKey]) || !bytes.Equal(rk.Payload, g.keys[fieldPayloadAuthKey]) {
				t.Fatal("reply keys differ from keys.json")
			}
			if hs.Op() == "sign-rpms" {
				sk, err := msg.SubKeys()
				must(t, err)
				if !bytes.Equal(sk.ReplyPayload, g.subKeys().ReplyPayload) || !bytes.Equal(sk.RequestHeader, g.subKeys().RequestHeader) {
					t.Fatal("sub keys differ from keys.json")
				}
			}
		})
	}
}

func decodeReplyLeg(t *testing.T, g *golden, p parsed, leg string, op string) []item {
	r := bytes.NewReader(p.outer)
	keys := g.replyKeys()
	rh, err := ReadReplyHeader(r, keys.Header)
	must(t, err)
	pr, err := NewPayloadReader(r, keys.Payload, DefaultMaxFilePayload, "reply payload")
	must(t, err)
	data, err := io.ReadAll(pr)
	must(t, err)
	if !pr.verified() {
		t.Fatal("reply payload MAC not verified")
	}
	items := []item{{header: rh.Bytes(), data: data, mac: pr.MAC()}}
	wantCode := CodeOK
	if g.name == "auth-failed" {
		wantCode = CodeAuthenticationFailed
	}
	if rh.Code() != wantCode {
		t.Fatalf("reply code %v, want %v", rh.Code(), wantCode)
	}
	// Re-encode the reply with the keys.
	enc, err := encodeReply(keys, rh.Code(), rh.Fields(), data)
	must(t, err)
	if !bytes.HasPrefix(p.outer, enc) {
		t.Fatalf("%s: re-encoded reply differs", leg)
	}
	if op == "sign-rpms" {
		if g.name == "x-sign-rpms-head-bigrpm" && leg == "s2b" {
			// §16.3: four stray bytes 00 00 00 0b, then a sub-reply
			// that the connection cuts short.
			rest := p.outer[len(enc):]
			sr := NewSubReplyReader(bytes.NewReader(rest), g.subKeys(), DefaultMaxFilePayload)
			if _, err := sr.Next(); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("stray bytes read as a sub-reply: want ErrIntegrity, got %v", err)
			}
			if _, err := sr.Next(); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("after a failure Next must keep failing, got %v", err)
			}
			if !bytes.Equal(rest[:4], []byte{0, 0, 0, 0x0b}) {
				t.Fatalf("stray bytes %x", rest[:4])
			}
			sr = NewSubReplyReader(bytes.NewReader(rest[4:]), g.subKeys(), DefaultMaxFilePayload)
			s, err := sr.Next()
			must(t, err)
			if s.Header.Status() != CodeOK || s.Payload.Len() != 4408 {
				t.Fatalf("truncated sub-reply: status %v, L=%d", s.Header.Status(), s.Payload.Len())
			}
			if _, err := io.ReadAll(s.Payload); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("truncated payload: want io.ErrUnexpectedEOF, got %v", err)
			}
			if p.outerEOF {
				t.Fatal("bigrpm s2b should end without an outer EOF")
			}
			return items
		}
		sr := NewSubReplyReader(r, g.subKeys(), DefaultMaxFilePayload)
		for {
			s, err := sr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			d, err := io.ReadAll(s.Payload)
			must(t, err)
			id, _ := s.Header.Fields().U32(FieldID)
			if id != s.Seq {
				t.Fatalf("sub-reply %d answers id %d", s.Seq, id)
			}
			if g.name == "x-sign-rpms-head-status9" {
				if s.Header.Status() != CodeUnknownError || len(d) != 0 {
					t.Fatalf("status9: status %v L=%d", s.Header.Status(), len(d))
				}
			} else if s.Header.Status() != CodeOK {
				t.Fatalf("sub-reply %d status %v", s.Seq, s.Header.Status())
			}
			if g.name == "sign-rpms-head" && !bytes.HasPrefix(d, []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}) {
				t.Fatal("head-signing sub-reply is not a signature header (§7.8)")
			}
			enc, err := encodeSubReply(g.subKeys(), s.Seq, s.Header.Fields(), d)
			must(t, err)
			items = append(items, item{header: s.Header.Bytes(), data: d, mac: s.Payload.MAC()})
			var re []byte
			for _, it := range items[1:] {
				re = append(re, it.header...)
				re = binary.BigEndian.AppendUint64(re, uint64(len(it.data)))
				re = append(append(re, it.data...), it.mac...)
			}
			if !bytes.HasSuffix(re, enc) {
				t.Fatalf("sub-reply %d does not re-encode", s.Seq)
			}
		}
		wantSubs := map[string]int{"sign-rpms": 2, "sign-rpms-head": 2, "x-sign-rpms-head-status9": 1, "x-sign-rpms-head-bigrpm": 0}[g.name]
		if len(items)-1 != wantSubs {
			t.Fatalf("%s: %d sub-replies, want %d", leg, len(items)-1, wantSubs)
		}
	}
	if r.Len() != 0 {
		t.Fatalf("%s: %d bytes after the last item", leg, r.Len())
	}
	if !p.outerEOF {
		t.Fatalf("%s: no outer EOF", leg)
	}
	return items
}

func TestGoldenReplies(t *testing.T) {
	for _, g := range loadGoldens(t) {
		t.Run(g.name, func(t *testing.T) {
			op := ""
			{
				h, err := ReadRequestHeader(bytes.NewReader(parseLeg(t, g.leg(t, "b2s")).outer))
				must(t, err)
				op = h.Op()
			}
			s2b := parseLeg(t, g.leg(t, "s2b"))
			b2c := parseLeg(t, g.leg(t, "b2c"))
			decodeReplyLeg(t, g, s2b, "s2b", op)
			itemsC := decodeReplyLeg(t, g, b2c, "b2c", op)

			// B->C uses the canonical chunking (§2.5): rebuild it from
			// the decoded items and compare chunk by chunk.
			var buf bytes.Buffer
			cw := NewChunkWriter(&buf)
			for _, it := range itemsC {
				must(t, cw.WriteChunk(Outer, it.header))
				must(t, WriteCanonicalPayload(cw, uint64(len(it.data)), bytes.NewReader(it.data), it.mac))
			}
			must(t, cw.WriteEOF(Outer))
			sameChunks(t, "b2c outer chunks", parseLeg(t, buf.Bytes()).outerCh, b2c.outerCh)

			// The same through the relay API the bridge uses.
			buf.Reset()
			cw = NewChunkWriter(&buf)
			r := bytes.NewReader(b2c.outer)
			rh, err := ReadRelayReplyHeader(r)
			must(t, err)
			p, err := NewRelayPayloadReader(r, 1<<30, "reply payload")
			must(t, err)
			must(t, WriteCanonicalItem(cw, rh.Bytes(), p))
			for {
				sh, err := ReadRelaySubReplyHeader(r)
				if err == io.EOF {
					break
				}
				must(t, err)
				p, err := NewRelayPayloadReader(r, 1<<30, "sub-reply payload")
				must(t, err)
				must(t, WriteCanonicalItem(cw, sh.Bytes(), p))
			}
			var want []Chunk
			for _, c := range b2c.outerCh {
				if !c.IsEOF() {
					want = append(want, c)
				}
			}
			sameChunks(t, "b2c outer chunks via relay readers", parseLeg(t, buf.Bytes()).outerCh, want)

			// Inner chunks from S reach C verbatim, and before any outer
			// chunk (§5.5: the reply waits for the inner phase).
			sameChunks(t, "b2c inner chunks vs s2b", b2c.innerCh, s2b.innerCh)
			seenOuter := false
			for _, c := range b2c.chunks {
				if c.Stream == Outer {
					seenOuter = true
				} else if seenOuter {
					t.Fatal("b2c: inner chunk after an outer chunk")
				}
			}
		})
	}
}

// TestGoldenMux feeds every captured stream through a Mux, with tiny reads,
// and checks that both streams come out as the raw chunk parse says, with
// the inner chunk boundaries intact: once reading the streams one after the
// other (so one is buffered whole) and once concurrently.
func TestGoldenMux(t *testing.T) {
	for _, g := range loadGoldens(t) {
		for _, leg := range []string{"c2b", "b2c", "b2s", "s2b"} {
			raw := g.leg(t, leg)
			want := parseLeg(t, raw)
			var wantInner [][]byte
			for _, c := range want.innerCh {
				if !c.IsEOF() {
					wantInner = append(wantInner, c.Data)
				}
			}
			t.Run(g.name+"/"+leg, func(t *testing.T) {
				for _, order := range []string{"outer-first", "inner-first", "concurrent"} {
					m := NewMux(readOnly(iotest.OneByteReader(bytes.NewReader(raw))), nil)
					var outer []byte
					var inner [][]byte
					var oerr, ierr error
					readOuter := func() { outer, oerr = io.ReadAll(m.Reader(Outer)) }
					readInner := func() {
						for {
							b, err := m.Reader(Inner).ReadChunk()
							if err != nil {
								if err != io.EOF {
									ierr = err
								}
								return
							}
							inner = append(inner, b)
						}
					}
					switch order {
					case "outer-first":
						readOuter()
						readInner()
					case "inner-first":
						readInner()
						readOuter()
					default:
						var wg sync.WaitGroup
						wg.Add(2)
						go func() { defer wg.Done(); readOuter() }()
						go func() { defer wg.Done(); readInner() }()
						wg.Wait()
					}
					if oerr != nil || ierr != nil {
						t.Fatalf("%s: %v / %v", order, oerr, ierr)
					}
					if !bytes.Equal(outer, want.outer) {
						t.Fatalf("%s: outer stream differs", order)
					}
					if len(inner) != len(wantInner) {
						t.Fatalf("%s: %d inner chunks, want %d", order, len(inner), len(wantInner))
					}
					for i := range inner {
						if !bytes.Equal(inner[i], wantInner[i]) {
							t.Fatalf("%s: inner chunk %d differs", order, i)
						}
					}
					if m.Reader(Outer).EndedByMarker() != want.outerEOF || m.Reader(Inner).EndedByMarker() != want.innerEOF {
						t.Fatalf("%s: EOF markers outer %v inner %v, want %v %v", order,
							m.Reader(Outer).EndedByMarker(), m.Reader(Inner).EndedByMarker(), want.outerEOF, want.innerEOF)
					}
				}
			})
		}
	}
}
