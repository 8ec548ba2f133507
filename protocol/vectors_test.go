package protocol

// Named test vectors in the style of age's testkit: one file per vector in
// testdata/vectors/, named good_* or fail_*, a short header of "key: value"
// lines saying what the bytes are and what must happen, a blank line, then
// the bytes in hex. They are generated from the golden captures and from
// constructions below:
//
//	go test ./protocol -run TestVectorFiles -update
//
// rewrites testdata/vectors/ and the fuzz seed corpora in testdata/fuzz/.
// Without -update, TestVectorFiles fails if the files differ from what the
// generator makes, and TestVectors checks every file.

import (
	"bufio"
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors and testdata/fuzz from the generator")

const vectorDir = "testdata/vectors"

type vector struct {
	name   string
	item   string // chunks, fields, request, inner, reply, subrequest, subreply
	expect string // success or an error class (see classify)
	hdr    [][2]string
	body   []byte
}

func (v *vector) get(k string) string {
	for _, kv := range v.hdr {
		if kv[0] == k {
			return kv[1]
		}
	}
	return ""
}

func (v *vector) getHex(t testing.TB, k string) []byte {
	b, err := hex.DecodeString(v.get(k))
	if err != nil {
		t.Fatalf("%s: header %s: %v", v.name, k, err)
	}
	return b
}

func (v *vector) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "expect: %s\nitem: %s\n", v.expect, v.item)
	for _, kv := range v.hdr {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
	}
	b.WriteString("\n")
	for i := 0; i < len(v.body); i += 32 {
		b.WriteString(hex.EncodeToString(v.body[i:min(i+32, len(v.body))]))
		b.WriteString("\n")
	}
	return b.Bytes()
}

func parseVector(t testing.TB, name string, data []byte) *vector {
	v := &vector{name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	inBody := false
	var body strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if inBody {
			body.WriteString(line)
			continue
		}
		if line == "" {
			inBody = true
			continue
		}
		k, val, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("%s: bad header line %q", name, line)
		}
		switch k {
		case "expect":
			v.expect = val
		case "item":
			v.item = val
		default:
			v.hdr = append(v.hdr, [2]string{k, val})
		}
	}
	b, err := hex.DecodeString(body.String())
	if err != nil {
		t.Fatalf("%s: body: %v", name, err)
	}
	v.body = b
	return v
}

// classify maps an error to the vocabulary of the expect: header.
func classify(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, ErrIntegrity):
		return "integrity"
	case errors.Is(err, ErrUnknownVersion):
		return "unknown-version"
	case errors.Is(err, ErrUnknownOp):
		return "unknown-op"
	case errors.Is(err, ErrFieldNotAllowed):
		return "field-not-allowed"
	case errors.Is(err, ErrMissingField):
		return "missing-field"
	case errors.Is(err, ErrShortKey):
		return "short-key"
	case errors.Is(err, ErrInvalidField):
		return "invalid-field"
	case errors.Is(err, ErrLimit):
		return "limit"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected-eof"
	case err == io.EOF:
		return "eof"
	}
	return "other: " + err.Error()
}

func trailing(r *bytes.Reader, item string) error {
	if r.Len() != 0 {
		return malformed(item, "%d bytes after the item", r.Len())
	}
	return nil
}

func maxPayload(v *vector) uint64 {
	if s := v.get("max-payload"); s != "" {
		n, _ := strconv.ParseUint(s, 10, 64)
		return n
	}
	return DefaultMaxFilePayload
}

// checkVector runs the decoder the vector is for and returns its verdict.
func checkVector(t testing.TB, v *vector) error {
	r := bytes.NewReader(v.body)
	switch v.item {
	case "chunks":
		cr := NewChunkReader(r)
		for {
			if _, err := cr.Next(); err == io.EOF {
				break
			} else if err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, cr); err != nil {
				return err
			}
		}
		// The Mux must reach the same verdict.
		m := NewMux(readOnly(bytes.NewReader(v.body)), nil)
		if _, err := io.ReadAll(m.Reader(Outer)); err != nil {
			return fmt.Errorf("Mux accepted what the ChunkReader did but: %w", err)
		}
		_, err := io.ReadAll(m.Reader(Inner))
		return err
	case "fields":
		var f Fields
		return f.UnmarshalBinary(v.body)
	case "request":
		h, err := ReadRequestHeader(r)
		if err != nil {
			return err
		}
		if _, err := ValidateRequest(h); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, h.Payload(r)); err != nil {
			return err
		}
		return trailing(r, "request")
	case "inner":
		h, err := ReadRequestHeader(bytes.NewReader(v.getHex(t, "request")))
		if err != nil {
			t.Fatalf("%s: request header: %v", v.name, err)
		}
		m, err := parseInnerMessage(v.body)
		if err != nil {
			return err
		}
		ok, err := m.Verify(h, v.getHex(t, "payload-sha512"))
		if err == nil && strconv.FormatBool(ok) != v.get("authenticated") {
			return fmt.Errorf("authenticated = %v, want %s", ok, v.get("authenticated"))
		}
		return err
	case "reply":
		keys := ReplyKeys{Header: v.getHex(t, "header-key"), Payload: v.getHex(t, "payload-key")}
		if _, _, err := ReadReply(r, keys, maxPayload(v)); err != nil {
			return err
		}
		return trailing(r, "reply")
	case "subrequest", "subreply":
		seq, _ := strconv.ParseUint(v.get("seq"), 10, 32)
		hk := deriveSubKey(v.getHex(t, "base-header-key"), uint32(seq))
		pk := deriveSubKey(v.getHex(t, "base-payload-key"), uint32(seq))
		var err error
		var sq *SubRequestHeader
		if v.item == "subrequest" {
			sq, err = readSubRequestHeader(r, hk)
		} else {
			_, err = readSubReplyHeader(r, hk)
		}
		if err != nil {
			return err
		}
		p, err := NewPayloadReader(r, pk, maxPayload(v), v.item+" payload")
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, p); err != nil {
			return err
		}
		if sq != nil && v.get("validate") == "bridge" {
			if err := ValidateSubRequest(sq, p.Len()); err != nil {
				return err
			}
		}
		return trailing(r, v.item)
	}
	t.Fatalf("%s: unknown item %q", v.name, v.item)
	return nil
}

func TestVectors(t *testing.T) {
	ents, err := os.ReadDir(vectorDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".txt") {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(name, ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(vectorDir, name))
			must(t, err)
			v := parseVector(t, name, data)
			if strings.HasPrefix(name, "good_") != (v.expect == "success") {
				t.Fatalf("name says %s but expect: %s", strings.SplitN(name, "_", 2)[0], v.expect)
			}
			err = checkVector(t, v)
			if got := classify(err); got != v.expect {
				t.Fatalf("got %s (%v), want %s", got, err, v.expect)
			}
			if err != nil && strings.Contains(err.Error(), "XXXX") {
				t.Fatalf("error message shows secret bytes: %v", err)
			}
		})
	}
	if n < 50 {
		t.Fatalf("only %d vectors", n)
	}
}

// --- generator -----------------------------------------------------------

type genItems struct {
	request, reply []byte   // first outer item of the leg
	subs           [][]byte // sub-requests or sub-replies, whole
	rest           []byte   // what followed the last decodable item
}

// splitRequests cuts the outer stream of c2b/b2s into items.
func splitRequests(t testing.TB, g *golden, outer []byte) genItems {
	r := bytes.NewReader(outer)
	h, err := ReadRequestHeader(r)
	must(t, err)
	io.Copy(io.Discard, h.Payload(r))
	var out genItems
	out.request = outer[:len(outer)-r.Len()]
	if h.Op() == "sign-rpms" {
		for r.Len() > 0 {
			start := len(outer) - r.Len()
			_, err := ReadRelaySubRequestHeader(r)
			must(t, err)
			p, err := NewRelayPayloadReader(r, TiB, "")
			must(t, err)
			must(t, p.Finish())
			out.subs = append(out.subs, outer[start:len(outer)-r.Len()])
		}
	}
	return out
}

func splitReplies(t testing.TB, g *golden, outer []byte, op string) genItems {
	r := bytes.NewReader(outer)
	_, err := ReadRelayReplyHeader(r)
	must(t, err)
	p, err := NewRelayPayloadReader(r, TiB, "")
	must(t, err)
	must(t, p.Finish())
	var out genItems
	out.reply = outer[:len(outer)-r.Len()]
	if op == "sign-rpms" && g.name != "x-sign-rpms-head-bigrpm" {
		for r.Len() > 0 {
			start := len(outer) - r.Len()
			_, err := ReadRelaySubReplyHeader(r)
			must(t, err)
			p, err := NewRelayPayloadReader(r, TiB, "")
			must(t, err)
			must(t, p.Finish())
			out.subs = append(out.subs, outer[start:len(outer)-r.Len()])
		}
	}
	out.rest = outer[len(outer)-r.Len():]
	return out
}

func flipAt(b []byte, i int) []byte {
	b = bytes.Clone(b)
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 0x01
	return b
}

func generateVectors(t testing.TB) []*vector {
	gs := map[string]*golden{}
	for _, g := range loadGoldens(t) {
		gs[g.name] = g
	}
	var vs []*vector
	add := func(name, item, expect string, body []byte, hdr ...string) {
		v := &vector{name: name, item: item, expect: expect, body: body}
		for i := 0; i < len(hdr); i += 2 {
			v.hdr = append(v.hdr, [2]string{hdr[i], hdr[i+1]})
		}
		vs = append(vs, v)
	}
	hx := hex.EncodeToString

	// chunks
	lk := gs["list-keys"]
	lkc2b := lk.leg(t, "c2b")
	add("good_chunks_list_keys_c2b", "chunks", "success", lkc2b, "comment", "golden list-keys client->bridge: inner ClientHello first, both EOF markers")
	add("good_chunks_sign_rpms_b2s", "chunks", "success", gs["sign-rpms"].leg(t, "b2s"), "comment", "golden sign-rpms bridge->server in the canonical chunking")
	add("good_chunks_bigrpm_s2b_no_eof", "chunks", "success", gs["x-sign-rpms-head-bigrpm"].leg(t, "s2b"), "comment", "golden: the connection ends at a chunk boundary without an outer EOF; framing is fine")
	add("fail_chunks_inner_after_inner_eof", "chunks", "malformed", append(bytes.Clone(lkc2b), chunkBytes(Inner, []byte{0x15})...), "comment", "a chunk for the inner stream after its EOF marker (§2.2)")
	add("fail_chunks_outer_eof_twice", "chunks", "malformed", append(bytes.Clone(lk.leg(t, "b2c")), hdr(Outer, 0)...), "comment", "a second outer EOF marker")
	add("fail_chunks_cut_in_header", "chunks", "unexpected-eof", lkc2b[:len(lkc2b)-2], "comment", "the stream ends inside a chunk header")
	add("fail_chunks_cut_in_data", "chunks", "unexpected-eof", lkc2b[:100], "comment", "the stream ends inside the data of an inner chunk")

	// fields
	lkReq := splitRequests(t, lk, parseLeg(t, lkc2b).outer).request
	add("good_fields_empty", "fields", "success", []byte{0})
	add("good_fields_list_keys_request", "fields", "success", lkReq[4:len(lkReq)-8], "comment", "R2 of the golden list-keys request")
	add("good_fields_key_with_0x7f", "fields", "success", unhex(t, "01 02 61 7f 00"), "comment", "0x7F is accepted in keys, as the reference code does (§3.2, §13)")
	add("good_fields_inner_sign_rpms", "fields", "success", gs["sign-rpms"].inner, "comment", "golden inner block, secrets redacted as X")
	add("fail_fields_key_length_0", "fields", "malformed", unhex(t, "01 00 00"))
	add("fail_fields_key_control_byte", "fields", "malformed", unhex(t, "01 03 6f 0a 70 00"), "comment", "a key with a byte below 0x20")
	add("fail_fields_key_utf8", "fields", "malformed", unhex(t, "01 02 c3 a9 00"), "comment", "a non-ASCII key")
	add("fail_fields_duplicate_key", "fields", "malformed", unhex(t, "02 02 6f 70 01 61 02 6f 70 01 62"), "comment", "op twice: refused rather than letting the later value win")
	add("fail_fields_count_beyond_data", "fields", "unexpected-eof", unhex(t, "03 02 6f 70 01 61"))
	add("fail_fields_value_cut", "fields", "unexpected-eof", unhex(t, "01 02 6f 70 09 6c 69 73"))
	add("fail_fields_trailing_byte", "fields", "malformed", unhex(t, "00 00"))

	// requests
	sdReq := splitRequests(t, gs["sign-data"], parseLeg(t, gs["sign-data"].leg(t, "c2b")).outer).request
	add("good_request_list_keys", "request", "success", lkReq)
	add("good_request_sign_data", "request", "success", sdReq, "comment", "63-byte payload")
	add("good_request_sign_rpms", "request", "success", splitRequests(t, gs["sign-rpms"], parseLeg(t, gs["sign-rpms"].leg(t, "c2b")).outer).request)
	v0 := bytes.Clone(lkReq)
	v0[3] = 0
	add("fail_request_version_0", "request", "unknown-version", v0, "comment", "--internal-protocol-version 0 (§9)")
	v2 := bytes.Clone(lkReq)
	v2[3] = 2
	add("fail_request_version_2", "request", "unknown-version", v2)
	add("fail_request_unknown_op", "request", "unknown-op", requestBytes(t, "op", "list-everything", "user", "root"))
	add("fail_request_field_not_allowed", "request", "field-not-allowed", requestBytes(t, "op", "list-keys", "user", "root", "key", "k"))
	add("fail_request_missing_required_field", "request", "missing-field", requestBytes(t, "op", "get-public-key", "user", "root"))
	add("fail_request_missing_user", "request", "missing-field", []byte("\x00\x00\x00\x01\x01\x02op\x09list-keys\x00\x00\x00\x00\x00\x00\x00\x00"))
	add("fail_request_bool_02", "request", "invalid-field", requestBytes(t, "key", "k", "armor", "\x02", "op", "sign-data", "user", "u"))
	add("fail_request_oversized_bool", "request", "invalid-field", requestBytes(t, "key", "k", "armor", "\x00\x01", "op", "sign-data", "user", "u"), "comment", "a 2-byte bool")
	add("fail_request_unsafe_string_value", "request", "invalid-field", requestBytes(t, "key", "k\x00", "op", "sign-data", "user", "u"))
	add("fail_request_payload_over_op_limit", "request", "limit", append(withPayloadLen(lkReq, 1), 'x'), "comment", "list-keys allows no payload at the bridge")
	add("fail_request_payload_cut", "request", "unexpected-eof", sdReq[:len(sdReq)-10])
	add("fail_request_header_cut", "request", "unexpected-eof", lkReq[:20])
	add("fail_request_unsafe_key", "request", "malformed", []byte("\x00\x00\x00\x01\x01\x02o\x01\x01a\x00\x00\x00\x00\x00\x00\x00\x00"))

	// inner messages
	innerHdr := func(g *golden) []string {
		req := splitRequests(t, g, parseLeg(t, g.leg(t, "c2b")).outer).request
		h, err := ReadRequestHeader(bytes.NewReader(req))
		must(t, err)
		hb, _ := h.MarshalBinary()
		return []string{"request", hx(hb), "payload-sha512", hx(g.keys[fieldPayloadAuthSHA512]), "authenticated", "true"}
	}
	add("good_inner_list_keys", "inner", "success", lk.inner, innerHdr(lk)...)
	add("good_inner_sign_rpms", "inner", "success", gs["sign-rpms"].inner, innerHdr(gs["sign-rpms"])...)
	mutInner := func(g *golden, f func(*Fields)) []byte {
		m, err := parseInnerMessage(g.inner)
		must(t, err)
		f(&m.Fields)
		b, err := m.MarshalBinary()
		must(t, err)
		return b
	}
	flipField := func(k string) func(*Fields) {
		return func(f *Fields) { v, _ := f.Lookup(k); f.Set(k, flipAt(v, 5)) }
	}
	add("fail_inner_header_hash_flipped", "inner", "integrity", mutInner(lk, flipField(fieldHeaderAuthSHA512)), innerHdr(lk)...)
	add("fail_inner_payload_hash_flipped", "inner", "integrity", mutInner(lk, flipField(fieldPayloadAuthSHA512)), innerHdr(lk)...)
	add("fail_inner_payload_hash_missing", "inner", "missing-field", mutInner(lk, func(f *Fields) { f.Delete(fieldPayloadAuthSHA512) }), innerHdr(lk)...)
	add("fail_inner_header_hash_missing", "inner", "missing-field", mutInner(lk, func(f *Fields) { f.Delete(fieldHeaderAuthSHA512) }), innerHdr(lk)...)
	add("fail_inner_header_key_63_bytes", "inner", "short-key", mutInner(lk, func(f *Fields) { v, _ := f.Lookup(fieldHeaderAuthKey); f.Set(fieldHeaderAuthKey, v[:63]) }), innerHdr(lk)...)
	{
		var f Fields
		f.SetStr("key", "k")
		f.SetStr("rpm-name", "n")
		f.SetStr("rpm-version", "1")
		f.SetStr("rpm-release", "1")
		f.SetStr("rpm-arch", "noarch")
		f.SetStr("op", "sign-rpm")
		f.SetStr("user", "u")
		h, _ := NewRequestHeader(f, 0)
		m, err := NewInnerMessage(h, nil, ReplyKeys{Header: rep(0x11, 64), Payload: rep(0x22, 64)})
		must(t, err)
		b, _ := m.MarshalBinary()
		hb, _ := h.MarshalBinary()
		empty := sha512.Sum512(nil)
		add("good_inner_sign_rpm_without_payload_hash", "inner", "success", b, "request", hx(hb), "payload-sha512", hx(empty[:]), "authenticated", "false",
			"comment", "sign-rpm of a Koji RPM: payload-auth-sha512 left out, the payload is unauthenticated (§7.10)")
	}

	// replies
	replyHdr := func(g *golden) []string {
		return []string{"header-key", hx(g.keys[fieldHeaderAuthKey]), "payload-key", hx(g.keys[fieldPayloadAuthKey])}
	}
	lkRep := splitReplies(t, lk, parseLeg(t, lk.leg(t, "s2b")).outer, "list-keys").reply
	add("good_reply_list_keys", "reply", "success", lkRep, replyHdr(lk)...)
	add("good_reply_get_public_key", "reply", "success", splitReplies(t, gs["get-public-key"], parseLeg(t, gs["get-public-key"].leg(t, "s2b")).outer, "").reply, replyHdr(gs["get-public-key"])...)
	add("good_reply_auth_failed", "reply", "success", splitReplies(t, gs["auth-failed"], parseLeg(t, gs["auth-failed"].leg(t, "s2b")).outer, "").reply,
		append(replyHdr(gs["auth-failed"]), "comment", "AUTHENTICATION_FAILED with Y4-Y6 (L = 0)")...)
	{
		keys := ReplyKeys{Header: rep(0x11, 64), Payload: rep(0x22, 64)}
		var f Fields
		f.SetU32("num-keys", 2)
		b, _ := encodeReply(keys, CodeOK, f, []byte("key (gnupg)\x00rsakey (RSA)\x00"))
		add("good_reply_spec_section_12", "reply", "success", b, "header-key", hx(keys.Header), "payload-key", hx(keys.Payload), "comment", "the reply test vector of §12")
	}
	hl := 4 + 1 + 1 + 8 + 1 + 4 + 64 // list-keys reply header length
	add("fail_reply_code_changed", "reply", "integrity", flipAt(lkRep, 3), replyHdr(lk)...)
	add("fail_reply_field_changed", "reply", "integrity", flipAt(lkRep, hl-65), append(replyHdr(lk), "comment", "num-keys 3 -> 2, MAC unchanged")...)
	add("fail_reply_header_mac_flipped", "reply", "integrity", flipAt(lkRep, hl-1), replyHdr(lk)...)
	add("fail_reply_payload_byte_flipped", "reply", "integrity", flipAt(lkRep, hl+8+3), replyHdr(lk)...)
	add("fail_reply_payload_mac_flipped", "reply", "integrity", flipAt(lkRep, -1), replyHdr(lk)...)
	add("fail_reply_wrong_keys", "reply", "integrity", lkRep, replyHdr(gs["sign-data"])...)
	add("fail_reply_cut_in_mac", "reply", "unexpected-eof", lkRep[:len(lkRep)-1], replyHdr(lk)...)
	add("fail_reply_cut_in_payload", "reply", "unexpected-eof", lkRep[:hl+8+10], replyHdr(lk)...)
	add("fail_reply_header_only", "reply", "unexpected-eof", lkRep[:hl], append(replyHdr(lk), "comment", "Y4-Y6 missing (§6.1: the server MUST send them)")...)
	add("fail_reply_bare_unknown_version", "reply", "unknown-version", []byte{0, 0, 0, 1}, append(replyHdr(lk), "comment", "a server's answer to a request version other than 1 (§4.3 step 1, §9)")...)
	add("fail_reply_payload_over_limit", "reply", "limit", lkRep, append(replyHdr(lk), "max-payload", "45")...)

	// sub-requests
	subHdr := func(g *golden, req bool, seq int) []string {
		k := g.subKeys()
		if req {
			return []string{"base-header-key", hx(k.RequestHeader), "base-payload-key", hx(k.RequestPayload), "seq", strconv.Itoa(seq)}
		}
		return []string{"base-header-key", hx(k.ReplyHeader), "base-payload-key", hx(k.ReplyPayload), "seq", strconv.Itoa(seq)}
	}
	sr := gs["sign-rpms"]
	srReq := splitRequests(t, sr, parseLeg(t, sr.leg(t, "c2b")).outer)
	add("good_subrequest_sign_rpms_0", "subrequest", "success", srReq.subs[0], subHdr(sr, true, 0)...)
	add("good_subrequest_sign_rpms_1", "subrequest", "success", srReq.subs[1], subHdr(sr, true, 1)...)
	add("good_subrequest_head_1", "subrequest", "success", splitRequests(t, gs["sign-rpms-head"], parseLeg(t, gs["sign-rpms-head"].leg(t, "c2b")).outer).subs[1], subHdr(gs["sign-rpms-head"], true, 1)...)
	add("fail_subrequest_wrong_number", "subrequest", "integrity", srReq.subs[1], append(subHdr(sr, true, 0), "comment", "sub-request 1 checked with the keys of number 0 (§7.5)")...)
	add("fail_subrequest_header_mac_flipped", "subrequest", "integrity", flipAt(srReq.subs[0], 9+10), subHdr(sr, true, 0)...)
	add("fail_subrequest_payload_byte_flipped", "subrequest", "integrity", flipAt(srReq.subs[0], 9+64+8+100), subHdr(sr, true, 0)...)
	big := gs["x-sign-rpms-head-bigrpm"]
	add("fail_subrequest_trimmed_by_bridge", "subrequest", "integrity", splitRequests(t, big, parseLeg(t, big.leg(t, "b2s")).outer).subs[1],
		append(subHdr(big, true, 1), "comment", "golden: the bridge forwarded an 8192-byte head-signing prefix with C's MAC over the whole RPM (§7.7)")...)
	add("fail_subrequest_cut_in_payload", "subrequest", "unexpected-eof", srReq.subs[0][:500], subHdr(sr, true, 0)...)
	{
		k := sr.subKeys()
		var f Fields
		f.SetStr("rpm-name", "x")
		d := k.forIndex(0)
		hm, _ := newMACHeader(nil, f, d.RequestHeader)
		var b bytes.Buffer
		b.Write(hm.bytes())
		writePayload(&b, d.RequestPayload, 3, bytes.NewReader([]byte("rpm")))
		add("fail_subrequest_missing_id", "subrequest", "missing-field", b.Bytes(), append(subHdr(sr, true, 0), "comment", "correct MACs, no id (§7.2)")...)
		var f2 Fields
		f2.SetU32(FieldID, 0)
		f2.SetStr("rpm-license", "MIT")
		b2, _ := encodeSubRequest(k, 0, f2, []byte("rpm"))
		add("fail_subrequest_field_not_allowed", "subrequest", "field-not-allowed", b2, append(subHdr(sr, true, 0), "validate", "bridge")...)
		var f3 Fields
		f3.SetU32(FieldID, 0)
		b3, _ := encodeSubRequest(k, 0, f3, nil)
		add("fail_subrequest_koji_without_nevra", "subrequest", "missing-field", b3,
			append(subHdr(sr, true, 0), "validate", "bridge", "comment", "empty payload (fetch from Koji) without rpm-name etc. (§7.2)")...)
	}

	// sub-replies
	srRep := splitReplies(t, sr, parseLeg(t, sr.leg(t, "s2b")).outer, "sign-rpms")
	add("good_subreply_sign_rpms_0", "subreply", "success", srRep.subs[0], subHdr(sr, false, 0)...)
	add("good_subreply_sign_rpms_1", "subreply", "success", srRep.subs[1], subHdr(sr, false, 1)...)
	s9 := gs["x-sign-rpms-head-status9"]
	add("good_subreply_status_9", "subreply", "success", splitReplies(t, s9, parseLeg(t, s9.leg(t, "s2b")).outer, "sign-rpms").subs[0],
		append(subHdr(s9, false, 0), "comment", "golden: status UNKNOWN_ERROR, L = 0, A5 = HMAC of the empty string")...)
	hd := gs["sign-rpms-head"]
	add("good_subreply_head_signature_header", "subreply", "success", splitReplies(t, hd, parseLeg(t, hd.leg(t, "s2b")).outer, "sign-rpms").subs[0], subHdr(hd, false, 0)...)
	bigRest := splitReplies(t, big, parseLeg(t, big.leg(t, "s2b")).outer, "sign-rpms").rest
	add("fail_subreply_stray_bytes", "subreply", "integrity", bigRest,
		append(subHdr(big, false, 0), "comment", "golden: 00 00 00 0b written by the 1.2 server's error routine (§16.3), then a sub-reply")...)
	add("fail_subreply_cut", "subreply", "unexpected-eof", bigRest[4:], append(subHdr(big, false, 0), "comment", "golden: the connection ends inside sub-reply 0's payload")...)
	add("fail_subreply_wrong_number", "subreply", "integrity", srRep.subs[0], subHdr(sr, false, 1)...)
	add("fail_subreply_payload_mac_flipped", "subreply", "integrity", flipAt(srRep.subs[0], -1), subHdr(sr, false, 0)...)
	{
		k := sr.subKeys()
		d := k.forIndex(0)
		for _, c := range []struct {
			name, expect string
			f            Fields
		}{
			{"fail_subreply_status_5_bytes", "invalid-field", Fields{{FieldID, []byte{0, 0, 0, 0}}, {fieldStatus, []byte{0, 0, 0, 0, 0}}}},
			{"fail_subreply_missing_status", "missing-field", Fields{{FieldID, []byte{0, 0, 0, 0}}}},
			{"fail_subreply_missing_id", "missing-field", Fields{{fieldStatus, []byte{0, 0, 0, 0}}}},
		} {
			hm, _ := newMACHeader(nil, c.f, d.ReplyHeader)
			var b bytes.Buffer
			b.Write(hm.bytes())
			writePayload(&b, d.ReplyPayload, 0, nil)
			add(c.name, "subreply", c.expect, b.Bytes(), append(subHdr(sr, false, 0), "comment", "correct MACs")...)
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].name < vs[j].name })
	return vs
}

// TestVectorFiles checks that testdata/vectors matches the generator, or
// rewrites it (and the fuzz seed corpora) with -update.
func TestVectorFiles(t *testing.T) {
	vs := generateVectors(t)
	if *update {
		os.RemoveAll(vectorDir)
		must(t, os.MkdirAll(vectorDir, 0o755))
		for _, v := range vs {
			must(t, os.WriteFile(filepath.Join(vectorDir, v.name+".txt"), v.marshal(), 0o644))
		}
		writeFuzzCorpus(t, vs)
		return
	}
	for _, v := range vs {
		got, err := os.ReadFile(filepath.Join(vectorDir, v.name+".txt"))
		if err != nil {
			t.Fatalf("%v (run go test ./protocol -run TestVectorFiles -update)", err)
		}
		if !bytes.Equal(got, v.marshal()) {
			t.Fatalf("%s differs from the generator (run with -update)", v.name)
		}
	}
	ents, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if len(ents) != len(vs) {
		t.Fatalf("%d files, generator makes %d", len(ents), len(vs))
	}
}

// --- fuzz seed corpora -----------------------------------------------------

// framingOnly returns the chunk stream b with every chunk's data cut to
// its first few bytes (and its header's length to match), keeping the
// streams, their order, the EOF markers and any malformation: a header cut
// short, data cut short (whose header keeps its length), a chunk after an
// EOF marker. FuzzChunkReader's seeds are whole captured sessions whose
// data the chunk layer never looks at; at full size (up to 80 KB) every
// input the fuzzer derives from them is as long, each execution costs that
// much, and minimizing each new interesting input (quadratic in its length)
// took the worker away for the whole minimization time.
func framingOnly(b []byte) []byte {
	const keep = 8
	var out []byte
	for len(b) > 0 {
		if len(b) < chunkHeaderLen {
			return append(out, b...)
		}
		h := ChunkHeader(binary.BigEndian.Uint32(b))
		data := b[chunkHeaderLen:]
		if h.Len() > len(data) {
			// Cut inside the data: the header keeps its length.
			out = append(out, b[:chunkHeaderLen]...)
			return append(out, data[:min(len(data), keep)]...)
		}
		out, _ = Chunk{Stream: h.Stream(), Data: data[:min(h.Len(), keep)]}.AppendBinary(out)
		b = data[h.Len():]
	}
	return out
}

func fuzzFile(args ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		default:
			panic(fmt.Sprintf("fuzzFile: %T", a))
		}
	}
	return b.Bytes()
}

// headerOnly cuts an outer request stream to its request header and a
// few bytes after it. ReadRequestHeader reads no further, so the payload
// and sub-requests of a captured session only make every input the
// fuzzer derives from it longer and its minimization slower.
func headerOnly(t testing.TB, outer []byte) []byte {
	r := bytes.NewReader(outer)
	_, err := ReadRequestHeader(r)
	must(t, err)
	n := len(outer) - r.Len()
	return outer[:n+min(8, r.Len())]
}

func writeFuzzCorpus(t testing.TB, vs []*vector) {
	root := filepath.Join("testdata", "fuzz")
	for _, f := range []string{"FuzzChunkReader", "FuzzFields", "FuzzRequestHeader", "FuzzInnerMessage", "FuzzReply", "FuzzSubRequest", "FuzzSubReply"} {
		os.RemoveAll(filepath.Join(root, f))
		must(t, os.MkdirAll(filepath.Join(root, f), 0o755))
	}
	put := func(fuzzer, name string, args ...any) {
		// Large seeds slow the fuzzer down for little gain: the golden
		// streams of more than 16 KiB are covered by the unit tests.
		for _, a := range args {
			if b, ok := a.([]byte); ok && len(b) > 16<<10 {
				return
			}
		}
		must(t, os.WriteFile(filepath.Join(root, fuzzer, name), fuzzFile(args...), 0o644))
	}
	for _, g := range loadGoldens(t) {
		for _, leg := range []string{"c2b", "b2c", "b2s", "s2b"} {
			raw := g.leg(t, leg)
			put("FuzzChunkReader", "golden-"+g.name+"-"+leg, framingOnly(raw))
			p := parseLeg(t, raw)
			switch leg {
			case "c2b", "b2s":
				put("FuzzRequestHeader", "golden-"+g.name+"-"+leg, headerOnly(t, p.outer))
				it := splitRequests(t, g, p.outer)
				put("FuzzFields", "golden-"+g.name+"-"+leg+"-request", it.request[4:len(it.request)-8])
				k := g.subKeys()
				for i, s := range it.subs {
					put("FuzzSubRequest", fmt.Sprintf("golden-%s-%s-%d", g.name, leg, i), s, k.RequestHeader, k.RequestPayload, uint32(i))
					if i == 0 {
						q, err := ReadRelaySubRequestHeader(bytes.NewReader(s))
						must(t, err)
						put("FuzzFields", "golden-"+g.name+"-"+leg+"-subrequest", q.signed())
					}
				}
			case "s2b", "b2c":
				put("FuzzReply", "golden-"+g.name+"-"+leg, p.outer, g.keys[fieldHeaderAuthKey], g.keys[fieldPayloadAuthKey])
				op := ""
				if strings.Contains(g.name, "rpms") {
					op = "sign-rpms"
				}
				it := splitReplies(t, g, p.outer, op)
				rh, err := ReadRelayReplyHeader(bytes.NewReader(it.reply))
				must(t, err)
				put("FuzzFields", "golden-"+g.name+"-"+leg+"-reply", rh.signed()[4:])
				k := g.subKeys()
				for i, s := range it.subs {
					put("FuzzSubReply", fmt.Sprintf("golden-%s-%s-%d", g.name, leg, i), s, k.ReplyHeader, k.ReplyPayload, uint32(i))
				}
				if len(it.rest) > 0 {
					put("FuzzSubReply", "golden-"+g.name+"-"+leg+"-rest", it.rest, k.ReplyHeader, k.ReplyPayload, uint32(0))
				}
			}
		}
		put("FuzzInnerMessage", "golden-"+g.name, g.inner)
		put("FuzzFields", "golden-"+g.name+"-inner", g.inner)
	}
	for _, v := range vs {
		name := "vector-" + v.name
		switch v.item {
		case "chunks":
			put("FuzzChunkReader", name, framingOnly(v.body))
		case "fields":
			put("FuzzFields", name, v.body)
		case "request":
			put("FuzzRequestHeader", name, v.body)
		case "inner":
			put("FuzzInnerMessage", name, v.body)
		case "reply":
			put("FuzzReply", name, v.body, v.getHex(t, "header-key"), v.getHex(t, "payload-key"))
		case "subrequest", "subreply":
			seq, _ := strconv.ParseUint(v.get("seq"), 10, 32)
			f := map[string]string{"subrequest": "FuzzSubRequest", "subreply": "FuzzSubReply"}[v.item]
			put(f, name, v.body, v.getHex(t, "base-header-key"), v.getHex(t, "base-payload-key"), uint32(seq))
		}
	}
}
