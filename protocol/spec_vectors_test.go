package protocol

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// unhex decodes hex with spaces and newlines allowed.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// TestSection11Request checks the worked example of §11.1 byte for byte:
// the request as one chunk, and its header hash (§12).
func TestSection11Request(t *testing.T) {
	var f Fields
	must(t, f.SetStr("op", "list-keys"))
	must(t, f.SetStr("user", "admin"))
	h, err := NewRequestHeader(f, 0)
	must(t, err)
	enc, _ := h.MarshalBinary()
	var wire bytes.Buffer
	must(t, NewChunkWriter(&wire).WriteChunk(Outer, enc))
	want := unhex(t, `00 00 00 25
		00 00 00 01
		02
		02 6f 70
		09 6c 69 73 74 2d 6b 65 79 73
		04 75 73 65 72
		05 61 64 6d 69 6e
		00 00 00 00 00 00 00 00`)
	if !bytes.Equal(wire.Bytes(), want) {
		t.Fatalf("§11.1 chunk:\n got %x\nwant %x", wire.Bytes(), want)
	}
	r12 := unhex(t, "0000000102026f70096c6973742d6b65797304757365720561646d696e")
	if !bytes.Equal(h.HeaderBytes(), r12) {
		t.Fatalf("R1||R2 = %x, want %x", h.HeaderBytes(), r12)
	}
	wantHash := unhex(t, `dd8d0afb9345f6a9a7e7e606ce511e584159e8503406dfe4fcc9da328474f8c0
		7ab0e998932fd334c4d79cab1060c7a02e12bfb7e5b0073dd7f3c1dda5db48e8`)
	if !bytes.Equal(h.SHA512(), wantHash) {
		t.Fatalf("header-auth-sha512 = %x", h.SHA512())
	}
	empty := sha512.Sum512(nil)
	if !bytes.Equal(empty[:], unhex(t, `cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce
		47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e`)) {
		t.Fatal("SHA-512 of the empty string")
	}

	// Decoding the same chunk gives the same header back.
	m := NewMux(readOnly(bytes.NewReader(wire.Bytes())), nil)
	got, err := ReadRequestHeader(m.Reader(Outer))
	must(t, err)
	if !bytes.Equal(got.HeaderBytes(), r12) || got.Op() != "list-keys" || got.User() != "admin" || got.PayloadLen() != 0 {
		t.Fatalf("decoded header: %x op=%q user=%q P=%d", got.HeaderBytes(), got.Op(), got.User(), got.PayloadLen())
	}
	if _, err := ValidateRequest(got); err != nil {
		t.Fatal(err)
	}
	// §11.3: the bridge re-frames R1||R2 and R3 as two chunks.
	var b2s bytes.Buffer
	must(t, WriteCanonicalRequest(NewChunkWriter(&b2s), got, got.PayloadLen(), got.Payload(m.Reader(Outer))))
	want113 := unhex(t, `00 00 00 1d 00 00 00 01 02 02 6f 70 09 6c 69 73 74 2d 6b 65 79 73 04 75 73 65 72 05 61 64 6d 69 6e
		00 00 00 08 00 00 00 00 00 00 00 00`)
	if !bytes.Equal(b2s.Bytes(), want113) {
		t.Fatalf("§11.3:\n got %x\nwant %x", b2s.Bytes(), want113)
	}
}

// TestSection11InnerBlock checks the layout of the §11.2 inner block
// (351 bytes with an 8-byte password).
func TestSection11InnerBlock(t *testing.T) {
	var f Fields
	must(t, f.SetStr("op", "list-keys"))
	must(t, f.SetStr("user", "admin"))
	h, _ := NewRequestHeader(f, 0)
	empty := sha512.Sum512(nil)
	msg := &InnerMessage{}
	must(t, msg.Fields.Set("password", []byte("XXXXXXXX")))
	must(t, msg.Fields.Set(fieldHeaderAuthSHA512, h.SHA512()))
	must(t, msg.Fields.Set(fieldPayloadAuthSHA512, empty[:]))
	must(t, msg.Fields.Set(fieldHeaderAuthKey, rep(0x11, 64)))
	must(t, msg.Fields.Set(fieldPayloadAuthKey, rep(0x22, 64)))
	b, err := msg.MarshalBinary()
	must(t, err)
	if len(b) != 351 {
		t.Fatalf("inner block is %d bytes, §11.2 says 351", len(b))
	}
	prefix := unhex(t, "05 08 70 61 73 73 77 6f 72 64 08")
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("inner block starts %x", b[:12])
	}
	if ok, err := msg.Verify(h, empty[:]); err != nil || !ok {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
}

// TestSection12Reply checks the reply vectors of §12 and the canonical
// chunking of §11.4.
func TestSection12Reply(t *testing.T) {
	keys := ReplyKeys{Header: rep(0x11, 64), Payload: rep(0x22, 64)}
	var f Fields
	must(t, f.SetU32("num-keys", 2))
	h, err := newReplyHeader(CodeOK, f, keys.Header)
	must(t, err)
	if want := unhex(t, "0000000001086e756d2d6b6579730400000002"); !bytes.Equal(h.signed(), want) {
		t.Fatalf("Y1||Y2 = %x", h.signed())
	}
	wantY3 := unhex(t, `b83170729ae563078153fc450b2ae10556120565648107685b3178b5edc46e8f
		595bd1688228704734ccd5b2f6eccfb8697ee7821da24e7959e4bd10239fa22f`)
	if !bytes.Equal(h.MAC(), wantY3) {
		t.Fatalf("Y3 = %x", h.MAC())
	}
	payload := unhex(t, "6b65792028676e75706729007273616b657920285253412900")
	wantY6 := unhex(t, `5ec55ff66278a0e33a68064efb1d3ae1988df99cf5defc224f961862b547b60d
		197921bcfc938398b4abfaf84d0360985bcfc0e7a156352f414eb8e2b3fdcd4b`)
	if got := MAC(keys.Payload, payload); !bytes.Equal(got, wantY6) {
		t.Fatalf("Y6 = %x", got)
	}
	enc, err := encodeReply(keys, CodeOK, f, payload)
	must(t, err)
	want := bytes.Join([][]byte{h.signed(), wantY3, unhex(t, "0000000000000019"), payload, wantY6}, nil)
	if !bytes.Equal(enc, want) {
		t.Fatalf("EncodeReply:\n got %x\nwant %x", enc, want)
	}
	rh, data, err := ReadReply(bytes.NewReader(enc), keys, 1<<20)
	must(t, err)
	if rh.Code() != CodeOK || !bytes.Equal(data, payload) {
		t.Fatalf("ReadReply: code %v payload %q", rh.Code(), data)
	}
	n, err := rh.h.fields.U32("num-keys")
	if err != nil || n != 2 {
		t.Fatalf("num-keys = %d, %v", n, err)
	}

	// §11.4: the canonical B->C layout, then the outer EOF.
	var out bytes.Buffer
	cw := NewChunkWriter(&out)
	r := bytes.NewReader(enc)
	rh2, err := ReadRelayReplyHeader(r)
	must(t, err)
	p, err := NewRelayPayloadReader(r, 1<<20, "reply payload")
	must(t, err)
	must(t, WriteCanonicalItem(cw, rh2.Bytes(), p))
	must(t, cw.WriteEOF(Outer))
	want114 := bytes.Join([][]byte{
		unhex(t, "00000053"), h.signed(), wantY3,
		unhex(t, "00000008 0000000000000019"),
		unhex(t, "00000019"), payload,
		unhex(t, "00000040"), wantY6,
		unhex(t, "00000000"),
	}, nil)
	if !bytes.Equal(out.Bytes(), want114) {
		t.Fatalf("§11.4 layout:\n got %x\nwant %x", out.Bytes(), want114)
	}
}

func TestSection12AuthFailed(t *testing.T) {
	keys := ReplyKeys{Header: rep(0x11, 64), Payload: rep(0x22, 64)}
	enc, err := encodeReply(keys, CodeAuthenticationFailed, nil, nil)
	must(t, err)
	want := bytes.Join([][]byte{
		unhex(t, "0000000300"),
		unhex(t, `203cecc484a76b01fd78413e0ecd909f275913cc111013c2a0e189683b373f05
			0470e9bff7a44cdb8a7462cad8563149e56fa95978a806d1998c92872aa94737`),
		unhex(t, "0000000000000000"),
		unhex(t, `a8276fce1b6a7bcf653adde8b9ba97482c5d0b426632d231957e449494a17ada
			be3ae6f0d7254a97c2d22b870b54710582e6ff3638b81d0e67408e294f7d0c39`),
	}, nil)
	if !bytes.Equal(enc, want) {
		t.Fatalf("AUTHENTICATION_FAILED reply:\n got %x\nwant %x", enc, want)
	}
	h, data, err := ReadReply(bytes.NewReader(enc), keys, 0)
	must(t, err)
	var re *ReplyError
	if !errors.As(h.Err(), &re) || re.Code != CodeAuthenticationFailed || len(data) != 0 {
		t.Fatalf("Err() = %v", h.Err())
	}
	if h.Err().Error() != "Authentication failed" {
		t.Fatalf("error text %q", h.Err().Error())
	}
}

func TestSection12SubKeys(t *testing.T) {
	base := rep(0x33, 64)
	wants := []string{
		`67cb31f6d6caa32f7092835a809d8b530e47c4757770d59ca011ae19a10e3ffd
		 0fbc3d8feeb74c88faeb2ae17be50073c1bc872e72ffdbb4ddadd11f2aea6849`,
		`37b756e1bbe3d61d91d689041447f814bafcfae13ee53cedfd8b1c0f3acb46da
		 73f3d0caafae84eb5ee8c8a65e511cd909a84d2793c25ad333c4f7d587f283fa`,
		`47ebbbced3246ed1401acafa61614f7a2c9d7a06becc6b4d53787398e24ae404
		 94124752001ebc2b259f4aae3765a27884bd09cab430902ffb11a08c9c7ee25f`,
	}
	for n, w := range wants {
		if got := deriveSubKey(base, uint32(n)); !bytes.Equal(got, unhex(t, w)) {
			t.Errorf("K_%d = %x", n, got)
		}
	}
	var f Fields
	must(t, f.SetU32("id", 0))
	q, err := newSubRequestHeader(f, deriveSubKey(base, 0))
	must(t, err)
	if !bytes.Equal(q.signed(), unhex(t, "010269640400000000")) {
		t.Fatalf("Q1 = %x", q.signed())
	}
	if want := unhex(t, `5bdf9499c24b7968248ced7757a061e7f3b0a7672ee7eee96976a82e7522fe87
		db8417598cf6b2af10c8d44de3db75bbc2e06ed48ada4bfce471a2e6fcabfa90`); !bytes.Equal(q.MAC(), want) {
		t.Fatalf("Q2 = %x", q.MAC())
	}

	rbase := rep(0x44, 64)
	k0 := deriveSubKey(rbase, 0)
	if want := unhex(t, `a8604286b8d73d3186dfc67ea36051111757cf30f2d14f8263bfed6069ff21f7
		831d5ee488c4b87f9278f83dce5c5e955db9e3e2ddc5be5e7f01de6b9e9747b7`); !bytes.Equal(k0, want) {
		t.Fatalf("sub-reply K_0 = %x", k0)
	}
	af, err := SubReplyFields(unhex(t, "00000000"), CodeOK)
	must(t, err)
	a, err := newSubReplyHeader(af, k0)
	must(t, err)
	if !bytes.Equal(a.signed(), unhex(t, "020269640400000000067374617475730400000000")) {
		t.Fatalf("A1 = %x", a.signed())
	}
	if want := unhex(t, `7520997f2bd8904e277fbe3e496db86fc9e9b71d0a9ec9b38f5f8244da40b9a6
		9bf8394c22b9def05715d82645b3e0e1393010e3d14e56d1b2228b68b864e47b`); !bytes.Equal(a.MAC(), want) {
		t.Fatalf("A2 = %x", a.MAC())
	}
	// The same through SubKeys.forIndex.
	keys := SubKeys{RequestHeader: base, RequestPayload: base, ReplyHeader: rbase, ReplyPayload: rbase}
	if d := keys.forIndex(1); !bytes.Equal(d.RequestHeader, unhex(t, wants[1])) {
		t.Fatal("ForIndex(1)")
	}
}

func TestErrorCodeNames(t *testing.T) {
	cases := map[ErrorCode][2]string{
		0:  {"OK", "No error"},
		3:  {"AUTHENTICATION_FAILED", "Authentication failed"},
		7:  {"KEY_USER_NOT_FOUND", "The specified user can not access this key"},
		11: {"CORRUPT_RPM", "The RPM file is corrupt"},
		16: {"UNSUPPORTED_KEYTYPE", "Unsupported keytype for operation"},
		17: {"KOJI_ERROR", "Error 17"}, // signet's own: Sigul's client shows its number
		18: {"ErrorCode(18)", "Error 18"},
	}
	for c, w := range cases {
		if c.String() != w[0] || c.Text() != w[1] {
			t.Errorf("%d: %q %q", uint32(c), c.String(), c.Text())
		}
	}
	e := &ReplyError{Code: CodeInvalidImport, Message: "gpg: no valid OpenPGP data found"}
	if e.Error() != "Invalid import file: gpg: no valid OpenPGP data found" {
		t.Error(e.Error())
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// readOnly adapts a reader to the io.ReadWriter a Mux wants; writes fail.
func readOnly(r io.Reader) io.ReadWriter {
	return struct {
		io.Reader
		io.Writer
	}{r, failWriter{}}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("read-only test connection") }
