package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestFieldsDecodeRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string // hex
		want error
	}{
		{"empty block", "00", nil},
		{"empty value", "01 01 61 00", nil},
		{"key with 0x7f (accepted as the reference does)", "01 02 61 7f 00", nil},
		{"key length 0", "01 00 00", ErrMalformed},
		{"key with control byte", "01 02 61 0a 00", ErrMalformed},
		{"key with non-ASCII", "01 02 c3 a9 00", ErrMalformed},
		{"duplicate key", "02 01 61 00 01 61 01 62", ErrMalformed},
		{"count beyond data", "02 01 61 00", io.ErrUnexpectedEOF},
		{"value cut", "01 01 61 05 61 62", io.ErrUnexpectedEOF},
		{"key cut", "01 05 61 62", io.ErrUnexpectedEOF},
		{"nothing", "", io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			f, n, err := decodeFields(in)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("DecodeFields: %v, want %v", err, tc.want)
			}
			f2, raw, err2 := ReadFields(iotest.OneByteReader(bytes.NewReader(in)))
			if !errors.Is(err2, tc.want) || (tc.want == nil && err2 != nil) {
				t.Fatalf("ReadFields: %v, want %v", err2, tc.want)
			}
			if err != nil {
				return
			}
			enc, err := f.MarshalBinary()
			must(t, err)
			if n != len(in) || !bytes.Equal(enc, in) || !bytes.Equal(raw, in) || len(f2) != len(f) {
				t.Fatalf("round trip: n=%d enc=%x raw=%x", n, enc, raw)
			}
		})
	}
	var f Fields
	if err := f.UnmarshalBinary(unhex(t, "00 00")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// TestFieldsLargest: the largest block (255 pairs of 255-byte keys and
// values) encodes to maxFieldBlockLen bytes and decodes back.
func TestFieldsLargest(t *testing.T) {
	var f Fields
	for i := range maxFields {
		key := fmt.Sprintf("%03d", i) + strings.Repeat("k", maxKeyLen-3)
		must(t, f.Set(key, bytes.Repeat([]byte{byte(i)}, maxValueLen)))
	}
	if err := f.Set("one-too-many", nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("256th field: %v", err)
	}
	enc, err := f.MarshalBinary()
	must(t, err)
	if len(enc) != maxFieldBlockLen || maxFieldBlockLen != 130561 {
		t.Fatalf("largest block %d bytes", len(enc))
	}
	g, n, err := decodeFields(enc)
	if err != nil || n != len(enc) || len(g) != maxFields {
		t.Fatal(err, n, len(g))
	}
	// With R1 it is the largest request header of §2.3, 130,565 bytes.
	if 4+len(enc) != 130565 {
		t.Fatal("§2.3 size")
	}
}

func TestFieldsSetAndTypes(t *testing.T) {
	var f Fields
	for _, tc := range []struct {
		key string
		val []byte
	}{
		{"", nil},
		{strings.Repeat("k", 256), nil},
		{"bad\x7f", nil}, // senders keep to 0x20..0x7e
		{"k", make([]byte, 256)},
	} {
		if err := f.Set(tc.key, tc.val); err == nil {
			t.Errorf("Set(%q, %d bytes) accepted", tc.key, len(tc.val))
		}
	}
	if err := f.SetStr("s", "tab\there"); !errors.Is(err, ErrInvalidField) {
		t.Errorf("unsafe string value: %v", err)
	}
	must(t, f.SetStr("name", "alice"))
	must(t, f.SetBool("admin", true))
	must(t, f.SetU32("num", 7))
	must(t, f.SetDate("expire-date", time.Date(2028, 2, 29, 13, 0, 0, 0, time.UTC)))
	must(t, f.SetStr("name", "bob")) // replaces in place
	if got := strings.Join(f.Keys(), ","); got != "name,admin,num,expire-date" {
		t.Fatalf("keys %s", got)
	}
	if s, err := f.Str("name"); s != "bob" || err != nil {
		t.Fatal(s, err)
	}
	if b, err := f.Bool("admin"); !b || err != nil {
		t.Fatal(b, err)
	}
	if n, err := f.U32("num"); n != 7 || err != nil {
		t.Fatal(n, err)
	}
	if d, err := f.Date("expire-date"); err != nil || d.Format(time.DateOnly) != "2028-02-29" {
		t.Fatal(d, err)
	}
	if _, err := f.Str("missing"); !errors.Is(err, ErrMissingField) {
		t.Fatal(err)
	}
	f.Delete("num")
	if f.Has("num") {
		t.Fatal("Delete")
	}
	bad := Fields{
		{Key: "b2", Value: []byte{2}},
		{Key: "b-len", Value: []byte{1, 0}},
		{Key: "u3", Value: []byte{0, 0, 1}},
		{Key: "d1", Value: []byte("2023-02-29")},
		{Key: "d2", Value: []byte("2023-2-01x")},
		{Key: "d3", Value: []byte("20230-1-01")},
		{Key: "s", Value: []byte("\x00")},
		{Key: "e", Value: []byte("other")},
	}
	check := func(err error, what string) {
		var fe *FieldError
		if !errors.Is(err, ErrInvalidField) || !errors.As(err, &fe) {
			t.Errorf("%s: %v", what, err)
		}
		if err != nil && strings.Contains(err.Error(), "2023") {
			t.Errorf("%s: error shows the value: %v", what, err)
		}
	}
	_, err := bad.Bool("b2")
	check(err, "bool 02")
	_, err = bad.Bool("b-len")
	check(err, "bool of 2 bytes")
	_, err = bad.U32("u3")
	check(err, "u32 of 3 bytes")
	for _, k := range []string{"d1", "d2", "d3"} {
		_, err = bad.Date(k)
		check(err, "date "+k)
	}
	_, err = bad.Str("s")
	check(err, "string with NUL")
	_, err = bad.Enum("e", "ca", "sslserver")
	check(err, "enum")
	f.Zero()
	if v, _ := f.Lookup("name"); !bytes.Equal(v, []byte{0, 0, 0}) {
		t.Fatal("Zero")
	}
}

func requestBytes(t testing.TB, kv ...string) []byte {
	t.Helper()
	var f Fields
	for i := 0; i < len(kv); i += 2 {
		must(t, f.Set(kv[i], []byte(kv[i+1])))
	}
	h, err := NewRequestHeader(f, 0)
	must(t, err)
	b, _ := h.MarshalBinary()
	return b
}

func withPayloadLen(b []byte, p uint64) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint64(b[len(b)-8:], p)
	return b
}

func TestRequestValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  []byte
		want error
	}{
		{"list-keys", requestBytes(t, "op", "list-keys", "user", "admin"), nil},
		{"unknown op", requestBytes(t, "op", "frobnicate", "user", "u"), ErrUnknownOp},
		{"no op", []byte("\x00\x00\x00\x01\x01\x04user\x01u\x00\x00\x00\x00\x00\x00\x00\x00"), ErrMissingField},
		{"no user", []byte("\x00\x00\x00\x01\x01\x02op\x09list-keys\x00\x00\x00\x00\x00\x00\x00\x00"), ErrMissingField},
		{"field not allowed", requestBytes(t, "op", "list-keys", "user", "u", "armor", "\x01"), ErrFieldNotAllowed},
		{"required missing", requestBytes(t, "op", "get-public-key", "user", "u"), ErrMissingField},
		{"bool 02", requestBytes(t, "key", "k", "armor", "\x02", "op", "sign-data", "user", "u"), ErrInvalidField},
		{"bad date", requestBytes(t, "key", "k", "expire-date", "2023-13-01", "op", "new-key", "user", "u"), ErrInvalidField},
		{"good date", requestBytes(t, "key", "k", "expire-date", "2024-02-29", "op", "new-key", "user", "u"), nil},
		{"enum", requestBytes(t, "op", "sign-certificate", "user", "u", "issuer-key", "i", "subject-key", "s",
			"subject-certificate-name", "n", "subject", "CN=x", "validity", "1y", "certificate-type", "codesigning"), nil},
		{"bad enum", requestBytes(t, "op", "sign-certificate", "user", "u", "issuer-key", "i", "subject-key", "s",
			"subject-certificate-name", "n", "subject", "CN=x", "validity", "1y", "certificate-type", "evil"), ErrInvalidField},
		{"payload above limit", withPayloadLen(requestBytes(t, "op", "list-keys", "user", "u"), 1), ErrLimit},
		{"import-key at 1 MiB", withPayloadLen(requestBytes(t, "op", "import-key", "user", "u", "key", "k"), MiB), nil},
		{"import-key above 1 MiB", withPayloadLen(requestBytes(t, "op", "import-key", "user", "u", "key", "k"), MiB+1), ErrLimit},
		{"sign-data at 1 TiB", withPayloadLen(requestBytes(t, "op", "sign-data", "user", "u", "key", "k"), TiB), nil},
		{"sign-rpm from koji", requestBytes(t, "op", "sign-rpm", "user", "u", "key", "k",
			"rpm-name", "n", "rpm-version", "1", "rpm-release", "1", "rpm-arch", "noarch"), nil},
		{"sign-rpm from koji without arch", requestBytes(t, "op", "sign-rpm", "user", "u", "key", "k",
			"rpm-name", "n", "rpm-version", "1", "rpm-release", "1"), ErrMissingField},
		{"sign-rpm local", withPayloadLen(requestBytes(t, "op", "sign-rpm", "user", "u", "key", "k"), 100), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ReadRequestHeader(bytes.NewReader(tc.req))
			must(t, err)
			_, err = ValidateRequest(h)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRequestVersionAndTruncation(t *testing.T) {
	good := requestBytes(t, "op", "list-keys", "user", "admin")
	bad := bytes.Clone(good)
	bad[3] = 0
	r := bytes.NewReader(bad)
	_, err := ReadRequestHeader(r)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Version != 0 || !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("version 0: %v", err)
	}
	if r.Len() != len(bad)-4 {
		t.Fatal("ReadRequestHeader read past R1 of a bad version")
	}
	if _, err := ReadRequestHeader(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
	for i := 1; i < len(good); i++ {
		if _, err := ReadRequestHeader(bytes.NewReader(good[:i])); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v", i, err)
		}
	}
	// R3 is followed by nothing: the reader does not read past it.
	r = bytes.NewReader(append(bytes.Clone(good), 0xee))
	if _, err := ReadRequestHeader(r); err != nil || r.Len() != 1 {
		t.Fatal(err, r.Len())
	}
	var f Fields
	must(t, f.SetStr("op", "x"))
	if _, err := NewRequestHeader(f, 0); !errors.Is(err, ErrMissingField) {
		t.Fatalf("NewRequestHeader without user: %v", err)
	}
}

func TestRequestPayloadAndWrite(t *testing.T) {
	var f Fields
	must(t, f.SetStr("key", "k"))
	must(t, f.SetStr("op", "sign-data"))
	must(t, f.SetStr("user", "u"))
	payload := bytes.Repeat([]byte("data"), 3000)
	h, err := NewRequestHeader(f, uint64(len(payload)))
	must(t, err)
	var b bytes.Buffer
	sum, err := WriteRequest(&b, h, bytes.NewReader(payload))
	must(t, err)
	r := bytes.NewReader(append(b.Bytes(), 0xff))
	h2, err := ReadRequestHeader(r)
	must(t, err)
	p := h2.Payload(r)
	if p.SHA512() != nil {
		t.Fatal("SHA512 before the end")
	}
	got, err := io.ReadAll(p)
	must(t, err)
	if !bytes.Equal(got, payload) || !bytes.Equal(p.SHA512(), sum) || r.Len() != 1 {
		t.Fatal("payload round trip")
	}
	// A short payload on the wire, and a short payload source.
	h3, _ := ReadRequestHeader(bytes.NewReader(b.Bytes()))
	if _, err := io.ReadAll(h3.Payload(bytes.NewReader(payload[:10]))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short payload: %v", err)
	}
	if _, err := WriteRequest(io.Discard, h, bytes.NewReader(payload[:10])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short source: %v", err)
	}
}

func TestReplyFailures(t *testing.T) {
	keys := ReplyKeys{Header: rep(1, 64), Payload: rep(2, 64)}
	var f Fields
	must(t, f.SetStr("message", "detail"))
	enc, err := encodeReply(keys, CodeInvalidImport, f, []byte("payload"))
	must(t, err)
	hdrLen := 4 + 1 + 1 + 7 + 1 + 6 + 64
	flip := func(i int) []byte { b := bytes.Clone(enc); b[i] ^= 1; return b }
	for _, tc := range []struct {
		name string
		in   []byte
		max  uint64
		want error
	}{
		{"good", enc, 100, nil},
		{"code changed", flip(3), 100, ErrIntegrity},
		{"field changed", flip(10), 100, ErrIntegrity},
		{"header MAC flipped", flip(hdrLen - 1), 100, ErrIntegrity},
		{"payload flipped", flip(hdrLen + 8), 100, ErrIntegrity},
		{"payload MAC flipped", flip(len(enc) - 1), 100, ErrIntegrity},
		{"cut in MAC", enc[:len(enc)-1], 100, io.ErrUnexpectedEOF},
		{"cut in payload", enc[:hdrLen+9], 100, io.ErrUnexpectedEOF},
		{"no payload section", enc[:hdrLen], 100, io.ErrUnexpectedEOF},
		{"cut in header", enc[:10], 100, io.ErrUnexpectedEOF},
		{"payload too long", enc, 6, ErrLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, data, err := ReadReply(bytes.NewReader(tc.in), keys, tc.max)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil {
				var re *ReplyError
				if string(data) != "payload" || !errors.As(h.Err(), &re) || re.Message != "detail" {
					t.Fatalf("decoded %q %v", data, h.Err())
				}
			}
			if errors.Is(err, ErrIntegrity) && data != nil {
				t.Fatal("payload returned although its MAC failed")
			}
		})
	}
	if _, err := NewPayloadReader(bytes.NewReader(enc), nil, 1, "x"); err == nil {
		t.Fatal("NewPayloadReader accepted an empty key")
	}
	// A relay reader passes a bad MAC through and keeps it.
	b := flip(len(enc) - 1)
	r := bytes.NewReader(b)
	_, err = ReadRelayReplyHeader(r)
	must(t, err)
	p, err := NewRelayPayloadReader(r, 100, "reply payload")
	must(t, err)
	must(t, p.Finish())
	if !bytes.Equal(p.MAC(), b[len(b)-64:]) || p.verified() {
		t.Fatal("relay MAC")
	}
}

func TestSubProtocolRoundTrip(t *testing.T) {
	keys, err := GenerateSubKeys(nil)
	must(t, err)
	var wire bytes.Buffer
	sw := NewSubRequestWriter(&wire, keys)
	payloads := [][]byte{[]byte("rpm-0"), {}, bytes.Repeat([]byte{9}, 10000)}
	for i, p := range payloads {
		var f Fields
		must(t, f.SetU32(FieldID, uint32(i+10)))
		if len(p) == 0 {
			for _, k := range kojiLookupFields {
				must(t, f.SetStr(k, "x"))
			}
		}
		seq, err := sw.Write(f, uint64(len(p)), bytes.NewReader(p))
		must(t, err)
		if seq != uint32(i) {
			t.Fatalf("seq %d", seq)
		}
	}
	if _, err := sw.Write(Fields{}, 0, nil); !errors.Is(err, ErrMissingField) {
		t.Fatalf("sub-request without id: %v", err)
	}
	sr := NewSubRequestReader(bytes.NewReader(wire.Bytes()), keys, 1<<20)
	var replies bytes.Buffer
	rw := NewSubReplyWriter(&replies, keys)
	for i := range payloads {
		s, err := sr.Next()
		must(t, err)
		must(t, ValidateSubRequest(s.Header, s.Payload.Len()))
		if i == 1 {
			// Leave the payload unread: Next must skip it.
			if _, err := rw.Write(mustSubReplyFields(t, s.Header.ID(), CodeCorruptRPM), 0, nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		d, err := io.ReadAll(s.Payload)
		must(t, err)
		if !bytes.Equal(d, payloads[i]) || s.Seq != uint32(i) {
			t.Fatalf("sub-request %d", i)
		}
		_, err = rw.Write(mustSubReplyFields(t, s.Header.ID(), CodeOK), uint64(len(d)), bytes.NewReader(d))
		must(t, err)
	}
	if _, err := sr.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	// The client counts every sub-reply, failed ones included (§7.5).
	rr := NewSubReplyReader(bytes.NewReader(replies.Bytes()), keys, 1<<20)
	for i := range payloads {
		s, err := rr.Next()
		must(t, err)
		d, err := io.ReadAll(s.Payload)
		must(t, err)
		id, _ := s.Header.Fields().U32(FieldID)
		if id != uint32(i+10) {
			t.Fatalf("sub-reply %d id %d", i, id)
		}
		if i == 1 {
			var re *ReplyError
			if !errors.As(s.Header.Err(), &re) || re.Code != CodeCorruptRPM || len(d) != 0 {
				t.Fatal("failed sub-reply")
			}
		} else if !bytes.Equal(d, payloads[i]) {
			t.Fatalf("sub-reply %d payload", i)
		}
	}
	if _, err := rr.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	// Reading sub-reply 1 with the keys of 0 fails: numbering matters.
	b := replies.Bytes()
	n0 := len(mustEncodeSubReply(t, keys, 0, mustSubReplyFields(t, binary.BigEndian.AppendUint32(nil, 10), CodeOK), payloads[0]))
	if _, err := NewSubReplyReader(bytes.NewReader(b[n0:]), keys, 1<<20).Next(); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("wrong number: %v", err)
	}
	// Whitelist of §7.2.
	var f Fields
	must(t, f.SetU32(FieldID, 1))
	must(t, f.SetStr("rpm-license", "GPL"))
	h, _ := newSubRequestHeader(f, rep(1, 64))
	if err := ValidateSubRequest(h, 5); !errors.Is(err, ErrFieldNotAllowed) {
		t.Fatalf("whitelist: %v", err)
	}
	f.Delete("rpm-license")
	h, _ = newSubRequestHeader(f, rep(1, 64))
	if err := ValidateSubRequest(h, 0); !errors.Is(err, ErrMissingField) {
		t.Fatalf("koji fields: %v", err)
	}
	if err := ValidateSubRequest(h, TiB+1); !errors.Is(err, ErrLimit) {
		t.Fatalf("limit: %v", err)
	}
	// A sub-reply without a 4-byte status is refused on both sides.
	var sf Fields
	must(t, sf.Set(FieldID, []byte{1}))
	must(t, sf.Set(fieldStatus, []byte{0, 0, 0, 0, 0}))
	if _, err := newSubReplyHeader(sf, rep(1, 64)); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("5-byte status: %v", err)
	}
}

func mustSubReplyFields(t *testing.T, id []byte, c ErrorCode) Fields {
	f, err := SubReplyFields(id, c)
	must(t, err)
	return f
}

func mustEncodeSubReply(t *testing.T, k SubKeys, n uint32, f Fields, p []byte) []byte {
	b, err := encodeSubReply(k, n, f, p)
	must(t, err)
	return b
}

func TestInnerMessageVerify(t *testing.T) {
	var f Fields
	must(t, f.SetStr("op", "sign-rpm"))
	must(t, f.SetStr("user", "u"))
	must(t, f.SetStr("key", "k"))
	h, _ := NewRequestHeader(f, 0)
	keys, err := GenerateReplyKeys(nil)
	must(t, err)
	// sign-rpm may leave out the payload hash: unauthenticated.
	m, err := NewInnerMessage(h, nil, keys)
	must(t, err)
	ok, err := m.Verify(h, rep(0, 64))
	if err != nil || ok {
		t.Fatalf("sign-rpm without payload hash: %v %v", ok, err)
	}
	// Other ops may not.
	must(t, f.SetStr("op", "sign-data"))
	h2, _ := NewRequestHeader(f, 0)
	if _, err := NewInnerMessage(h2, nil, keys); !errors.Is(err, ErrMissingField) {
		t.Fatalf("NewInnerMessage without payload hash: %v", err)
	}
	m.Fields.Delete(fieldPayloadAuthSHA512)
	must(t, m.Fields.Set(fieldHeaderAuthSHA512, h2.SHA512()))
	if _, err := m.Verify(h2, rep(0, 64)); !errors.Is(err, ErrMissingField) {
		t.Fatalf("Verify without payload hash: %v", err)
	}
	// Wrong hashes and short keys.
	if _, err := m.Verify(h, nil); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("header hash of another request: %v", err)
	}
	if _, err := NewInnerMessage(h, nil, ReplyKeys{Header: rep(1, 63), Payload: rep(1, 64)}); !errors.Is(err, ErrShortKey) {
		t.Fatalf("short key: %v", err)
	}
	m2, _ := NewInnerMessage(h, nil, keys)
	must(t, m2.Fields.Set(fieldPayloadAuthKey, rep(1, 63)))
	if _, err := m2.Verify(h, nil); !errors.Is(err, ErrShortKey) {
		t.Fatalf("Verify with short key: %v", err)
	}
	if _, err := m2.SubKeys(); !errors.Is(err, ErrMissingField) {
		t.Fatalf("SubKeys missing: %v", err)
	}
	sk, _ := GenerateSubKeys(nil)
	must(t, m2.SetSubKeys(sk))
	got, err := m2.SubKeys()
	must(t, err)
	if !bytes.Equal(got.ReplyPayload, sk.ReplyPayload) {
		t.Fatal("SubKeys round trip")
	}
	m2.Zero()
	if v, _ := m2.Fields.Lookup(fieldSubReplyPayloadAuthKey); !bytes.Equal(v, make([]byte, 64)) {
		t.Fatal("Zero")
	}
}

func TestOpTable(t *testing.T) {
	ops := Ops()
	if len(ops) != 29 {
		t.Fatalf("%d operations, §4.4 lists 29", len(ops))
	}
	seen := map[string]bool{}
	for _, o := range ops {
		if seen[o.Name] {
			t.Errorf("duplicate op %s", o.Name)
		}
		seen[o.Name] = true
		if (o.ServerPayload == PayloadNone) && o.BridgeMaxPayload != 0 && o.Name != "sign-certificate" {
			t.Errorf("%s: NONE at the server but %d at the bridge", o.Name, o.BridgeMaxPayload)
		}
	}
	o, ok := LookupOp("sign-rpm")
	if !ok || !o.PayloadHashOptional || o.Auth != AuthKeyUser || o.Auth.String() != "KEY-USER" {
		t.Fatal("sign-rpm spec")
	}
	if fs, ok := o.Field("rpm-sigmd5"); !ok || fs.Type != TypeBlob {
		t.Fatal("rpm-sigmd5")
	}
	o.Fields[0].Name = "changed" // copies: the table stays intact
	if o2, _ := LookupOp("sign-rpm"); o2.Fields[0].Name != "key" {
		t.Fatal("LookupOp returned the table's slice")
	}
	if o, _ := LookupOp("sign-rpms"); !o.SubRequests || o.BridgeMaxPayload != 0 {
		t.Fatal("sign-rpms spec")
	}
	if PayloadFile.Limit(5, 6) != 5 || PayloadMemory.Limit(5, 6) != 6 || PayloadNone.Limit(5, 6) != 0 {
		t.Fatal("PayloadClass.Limit")
	}
	if _, ok := LookupOp("nope"); ok {
		t.Fatal("unknown op found")
	}
}

func TestUnknownVersionAnswer(t *testing.T) {
	var out bytes.Buffer
	m := NewMux(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(nil), &out}, nil)
	must(t, WriteUnknownVersion(m))
	want := bytes.Join([][]byte{hdr(Inner, 0), chunkBytes(Outer, []byte{0, 0, 0, 1})}, nil)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wrote %x", out.Bytes())
	}
	c := NewMux(readOnly(bytes.NewReader(out.Bytes())), nil)
	_, _, err := ReadReply(c.Reader(Outer), ReplyKeys{Header: rep(1, 64), Payload: rep(1, 64)}, 0)
	if !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("client side: %v", err)
	}
}

func TestEncodeRefusals(t *testing.T) {
	for name, f := range map[string]Fields{
		"duplicate key":   {{Key: "a", Value: nil}, {Key: "a", Value: nil}},
		"empty key":       {{Key: "", Value: nil}},
		"value too long":  {{Key: "a", Value: make([]byte, 256)}},
		"unsafe key":      {{Key: "a\n", Value: nil}},
		"too many fields": make(Fields, 256),
	} {
		if _, err := f.MarshalBinary(); err == nil {
			t.Errorf("%s: encoded", name)
		}
		if _, err := newReplyHeader(CodeOK, f, rep(1, 64)); err == nil {
			t.Errorf("%s: reply header built", name)
		}
	}
	// Numbering does not wrap: after sub-request 2^32-1 the writer stops.
	keys := SubKeys{RequestHeader: rep(1, 64), RequestPayload: rep(2, 64), ReplyHeader: rep(3, 64), ReplyPayload: rep(4, 64)}
	sw := NewSubRequestWriter(io.Discard, keys)
	sw.c.next = 1<<32 - 1
	var f Fields
	must(t, f.SetU32(FieldID, 1))
	if seq, err := sw.Write(f, 0, nil); err != nil || seq != 1<<32-1 {
		t.Fatal(seq, err)
	}
	if _, err := sw.Write(f, 0, nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("wrap: %v", err)
	}
	// Errors of a sequenced reader name the item number.
	b, _ := encodeSubReply(keys, 0, mustSubReplyFields(t, []byte{1}, CodeOK), nil)
	rr := NewSubReplyReader(bytes.NewReader(b), keys, 10)
	rr.c.next, rr.ok = 5, 5
	_, err := rr.Next()
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "sub-reply 5") {
		t.Fatalf("%v", err)
	}
	if !CodeDecryptFailed.Known() || ErrorCode(99).Known() {
		t.Fatal("Known")
	}
	keys.Zero()
	if !bytes.Equal(keys.ReplyPayload, make([]byte, 64)) {
		t.Fatal("SubKeys.Zero")
	}
}
