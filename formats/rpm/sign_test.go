package rpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/signet-project/signet/formats/openpgp"
)

// testKeys are the keys whose signatures rpmkeys checks.
func testKeys(t testing.TB) []*openpgp.Key {
	return []*openpgp.Key{pgpKey(t, rsa4096Key()), pgpKey(t, ed25519Key())}
}

func keyName(k *openpgp.Key) string {
	if _, ok := k.Public().(ed25519.PublicKey); ok {
		return "ed25519"
	}
	return "rsa"
}

// TestSignTestdata signs every go-rpmutils package with an RSA-4096 and an
// Ed25519 key and has rpmkeys --checksig verify every digest and
// signature. Packages with reserved space keep their size; the old package
// without a payload digest gets a header+payload signature too.
func TestSignTestdata(t *testing.T) {
	keys := testKeys(t)
	db := rpmDB(t, keys...)
	for _, tr := range testRPMs {
		for _, k := range keys {
			t.Run(tr.file+"/"+keyName(k), func(t *testing.T) {
				orig := loadRPM(t, tr.file)
				p := readBytes(t, orig)
				out := signBytes(t, orig, SignOptions{Key: k, Time: testSigTime})
				want := []string{headerSigLine(k), "MD5 digest: OK"}
				if !tr.payload {
					want = append(want, v3SigLine(k))
				}
				requireChecksig(t, db, out, want...)
				if tr.reserved && len(out) != len(orig) {
					t.Errorf("signed package is %d bytes, the original %d", len(out), len(orig))
				}
				q := readBytes(t, out)
				if q.NEVRA() != p.NEVRA() || !bytes.Equal(q.SigMD5(), p.SigMD5()) || !bytes.Equal(q.HeaderSHA256(), p.HeaderSHA256()) {
					t.Errorf("signed package reads differently: %v %x %x", q.NEVRA(), q.SigMD5(), q.HeaderSHA256())
				}
				if err := q.Verify(bytes.NewReader(out)); err != nil {
					t.Errorf("Verify of the signed package: %v", err)
				}
				if !bytes.Equal(out[q.MainOffset:], orig[p.MainOffset:]) || !bytes.Equal(out[:96], orig[:96]) {
					t.Error("lead, main header or payload changed")
				}
				wantTags := map[uint32]bool{sigTagRSA: keyName(k) == "rsa", sigTagDSA: keyName(k) == "ed25519",
					sigTagPGP: keyName(k) == "rsa" && !tr.payload, sigTagGPG: keyName(k) == "ed25519" && !tr.payload,
					sigTagSHA256: tr.sha256, sigTagSHA1: true, sigTagMD5: true, sigTagReserved: tr.reserved}
				for tag, want := range wantTags {
					if hasTag(q, tag) != want {
						t.Errorf("signature header tag %d present: %v, want %v (tags %v)", tag, hasTag(q, tag), want, sigTags(q))
					}
				}
			})
		}
	}
}

// TestSignV3 adds header+payload signatures, which rpmkeys reports as
// "V4 RSA/SHA256 Signature" (or EdDSA) next to the header signature.
func TestSignV3(t *testing.T) {
	keys := testKeys(t)
	db := rpmDB(t, keys...)
	for _, file := range []string{ufdio, "payload-test-0.1-w3.zstdio.x86_64.rpm", "simple-1.0.1-1.i386.rpm"} {
		for _, k := range keys {
			t.Run(file+"/"+keyName(k), func(t *testing.T) {
				orig := loadRPM(t, file)
				out := signBytes(t, orig, SignOptions{Key: k, Time: testSigTime, V3: true})
				requireChecksig(t, db, out, headerSigLine(k), v3SigLine(k), "MD5 digest: OK")
				if file != "simple-1.0.1-1.i386.rpm" && len(out) != len(orig) {
					t.Errorf("signed package is %d bytes, the original %d", len(out), len(orig))
				}
			})
		}
	}
}

// TestSignV3AddsMD5AndSize signs a package whose signature header lacks the
// MD5 and size: the V3 signature brings them.
func TestSignV3AddsMD5AndSize(t *testing.T) {
	k := pgpKey(t, rsa2048Key())
	orig := synthPackage(4128, []byte("payload"))
	p := readBytes(t, orig)
	// Rebuild the signature header with only the header digests.
	var items []tagData
	for _, tag := range []uint32{sigTagSHA1, sigTagSHA256} {
		e, _ := p.sig.lookup(tag)
		items = append(items, tagData{e.tag, e.typ, e.count, p.sig.bytes(e)})
	}
	stripped := spliceRaw(orig, p, buildHeader(tagHeaderSignatures, items))
	if readBytes(t, stripped).SigMD5() != nil {
		t.Fatal("MD5 not removed")
	}
	out := signBytes(t, stripped, SignOptions{Key: k, Time: testSigTime, V3: true})
	q := readBytes(t, out)
	if !bytes.Equal(q.SigMD5(), p.SigMD5()) || !hasTag(q, sigTagSize) {
		t.Errorf("V3 signing did not add the MD5 %x and size: tags %v, MD5 %x", p.SigMD5(), sigTags(q), q.SigMD5())
	}
	requireChecksig(t, rpmDB(t, k), out, headerSigLine(k), v3SigLine(k), "MD5 digest: OK")
}

// spliceRaw puts raw, an unpadded signature header, into pkg.
func spliceRaw(pkg []byte, p *Package, raw []byte) []byte {
	out := append([]byte(nil), pkg[:96]...)
	out = append(out, raw...)
	out = append(out, make([]byte, pad8(int64(len(raw)))-int64(len(raw)))...)
	return append(out, pkg[p.MainOffset:]...)
}

// TestResign signs a package signed by key A (with a V3 signature too)
// again with key B: only B's signature remains, and rpmkeys, which knows
// only B, accepts the package.
func TestResign(t *testing.T) {
	a, b := pgpKey(t, rsa2048Key()), pgpKey(t, ed25519Key())
	orig := loadRPM(t, ufdio)
	byA := signBytes(t, orig, SignOptions{Key: a, Time: testSigTime, V3: true})
	requireChecksig(t, rpmDB(t, a), byA, headerSigLine(a), v3SigLine(a))
	byB := signBytes(t, byA, SignOptions{Key: b, Time: testSigTime})
	q := readBytes(t, byB)
	for _, tag := range []uint32{sigTagRSA, sigTagPGP, sigTagGPG} {
		if hasTag(q, tag) {
			t.Errorf("tag %d of A's signature left in: %v", tag, sigTags(q))
		}
	}
	if !hasTag(q, sigTagDSA) {
		t.Errorf("no EdDSA header signature: %v", sigTags(q))
	}
	lines := requireChecksig(t, rpmDB(t, b), byB, headerSigLine(b))
	for _, l := range lines {
		if strings.Contains(l, shortKeyID(a)) {
			t.Errorf("rpmkeys still reports A's signature: %q", l)
		}
	}
	if len(byB) != len(orig) {
		t.Errorf("re-signed package is %d bytes, the original %d", len(byB), len(orig))
	}
}

// TestHeadSigning signs from a prefix that ends after the main header, as
// the server does for head signing, and splices the new signature header
// into the whole package as the client does: the result is byte for byte
// what Sign makes, and rpmkeys accepts it. A prefix rounded up to 4096
// bytes, as the bridge cuts it, gives the same header.
func TestHeadSigning(t *testing.T) {
	keys := testKeys(t)
	db := rpmDB(t, keys...)
	for _, file := range []string{ufdio, "payload-test-0.1-w6.xzdio.x86_64.rpm", "empty-0.1-1.x86_64.rpm"} {
		for _, k := range keys {
			t.Run(file+"/"+keyName(k), func(t *testing.T) {
				full := loadRPM(t, file)
				p := readBytes(t, full)
				opts := SignOptions{Key: k, Time: testSigTime}
				prefix := full[:p.PayloadOffset]
				pp, err := Read(bytes.NewReader(prefix), int64(len(prefix)))
				if err != nil {
					t.Fatal(err)
				}
				sh, err := pp.SignatureHeader(bytes.NewReader(prefix), opts)
				if err != nil {
					t.Fatalf("SignatureHeader from the prefix: %v", err)
				}
				if len(sh)%8 != 0 || !bytes.HasPrefix(sh, headerMagic) {
					t.Fatalf("signature header of %d bytes starting % x", len(sh), sh[:8])
				}
				var out bytes.Buffer
				if err := Splice(&out, bytes.NewReader(full), p, sh); err != nil {
					t.Fatalf("Splice: %v", err)
				}
				if !bytes.Equal(out.Bytes(), signBytes(t, full, opts)) {
					t.Error("spliced package differs from Sign's")
				}
				requireChecksig(t, db, out.Bytes(), headerSigLine(k))

				n := min((p.PayloadOffset+4095)/4096*4096, int64(len(full)))
				pb, err := Read(bytes.NewReader(full[:n]), n)
				if err != nil {
					t.Fatal(err)
				}
				sh2, err := pb.SignatureHeader(bytes.NewReader(full[:n]), opts)
				if err != nil || !bytes.Equal(sh2, sh) {
					t.Errorf("signature header from a %d-byte prefix differs (%v)", n, err)
				}
			})
		}
	}
}

// TestHeadSigningNeedsPayloadDigest: a package without a payload digest
// needs a header+payload signature, which a prefix cannot give.
func TestHeadSigningNeedsPayloadDigest(t *testing.T) {
	full := loadRPM(t, "simple-1.0.1-1.i386.rpm")
	p := readBytes(t, full)
	prefix := full[:p.PayloadOffset]
	pp := readBytes(t, prefix)
	_, err := pp.SignatureHeader(bytes.NewReader(prefix), SignOptions{Key: pgpKey(t, ed25519Key()), Time: testSigTime})
	if !errors.Is(err, ErrIncomplete) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrIncomplete", err)
	}
	t.Log(err)
}

// TestSpliceRejects gives Splice signature headers that are wrong: each is
// refused with ErrCorrupt and nothing is written.
func TestSpliceRejects(t *testing.T) {
	k := pgpKey(t, ed25519Key())
	full := loadRPM(t, ufdio)
	p := readBytes(t, full)
	good, err := p.SignatureHeader(nil, SignOptions{Key: k, Time: testSigTime})
	if err != nil {
		t.Fatal(err)
	}
	rawLen, err := headerLen(good[:introSize], sigLimits, "")
	if err != nil || rawLen == int64(len(good)) {
		t.Fatalf("test needs a signature header with padding (%d of %d bytes, %v)", rawLen, len(good), err)
	}
	other := loadRPM(t, "payload-test-0.1-w3.zstdio.x86_64.rpm")
	otherSig, err := readBytes(t, other).SignatureHeader(nil, SignOptions{Key: k, Time: testSigTime})
	if err != nil {
		t.Fatal(err)
	}
	flipDigest := append([]byte(nil), good...)
	i := bytes.Index(flipDigest, []byte(hex.EncodeToString(p.HeaderSHA256())))
	flipDigest[i+3] ^= 1
	flipPad := append([]byte(nil), good...)
	flipPad[len(flipPad)-1] = 1
	rng := make([]byte, 512)
	rand.Read(rng)
	cases := map[string][]byte{
		"empty":                   nil,
		"another package's":       otherSig,
		"digest changed":          flipDigest,
		"truncated":               good[:len(good)-8],
		"extra padding":           append(append([]byte(nil), good...), make([]byte, 8)...),
		"unpadded":                good[:rawLen],
		"non-zero padding":        flipPad,
		"unsigned (the original)": full[96:p.MainOffset],
		"random":                  rng,
		"magic only":              good[:16],
	}
	for name, sh := range cases {
		var out bytes.Buffer
		err := Splice(&out, bytes.NewReader(full), p, sh)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
		if out.Len() != 0 {
			t.Errorf("%s: %d bytes written", name, out.Len())
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestReservedSpace checks the reserved-space rule: enough reserved space
// keeps the size (shrinking for a larger signature, growing for a smaller
// one); too little leaves the reserved space as it was and the header
// grows; no reserved space stays none.
func TestReservedSpace(t *testing.T) {
	rsaKey, edKey := pgpKey(t, rsa4096Key()), pgpKey(t, ed25519Key())
	db := rpmDB(t, rsaKey, edKey)
	reservedOf := func(b []byte) int {
		e, _ := readBytes(t, b).sig.lookup(sigTagReserved)
		if e == nil {
			return -1
		}
		return int(e.count)
	}

	orig := loadRPM(t, ufdio)
	byRSA := signBytes(t, orig, SignOptions{Key: rsaKey, Time: testSigTime})
	byEd := signBytes(t, byRSA, SignOptions{Key: edKey, Time: testSigTime})
	if len(byRSA) != len(orig) || len(byEd) != len(orig) {
		t.Errorf("sizes %d (RSA) and %d (then Ed25519), want %d", len(byRSA), len(byEd), len(orig))
	}
	if r0, r1, r2 := reservedOf(orig), reservedOf(byRSA), reservedOf(byEd); !(r1 < r2 && r2 < r0) {
		t.Errorf("reserved space %d, then %d (RSA-4096), then %d (Ed25519)", r0, r1, r2)
	}
	requireChecksig(t, db, byEd, headerSigLine(edKey))

	small := synthPackage(8, []byte("payload"))
	out := signBytes(t, small, SignOptions{Key: rsaKey, Time: testSigTime})
	if len(out) <= len(small) || reservedOf(out) != 8 {
		t.Errorf("too little reserved space: %d -> %d bytes, reserved %d (want 8 kept)", len(small), len(out), reservedOf(out))
	}
	requireChecksig(t, db, out, headerSigLine(rsaKey))

	none := synthPackage(-1, []byte("payload"))
	out = signBytes(t, none, SignOptions{Key: edKey, Time: testSigTime})
	if reservedOf(out) != -1 {
		t.Errorf("reserved space %d added", reservedOf(out))
	}
	requireChecksig(t, db, out, headerSigLine(edKey))

	exact := synthPackage(4128, []byte("payload"))
	out = signBytes(t, exact, SignOptions{Key: rsaKey, Time: testSigTime, V3: true})
	if len(out) != len(exact) {
		t.Errorf("%d bytes, want %d", len(out), len(exact))
	}
	requireChecksig(t, db, out, headerSigLine(rsaKey), v3SigLine(rsaKey))
}

// TestSignRefusals: ECDSA and missing keys, and RPM v3 packages.
func TestSignRefusals(t *testing.T) {
	b := synthPackage(8, []byte("payload"))
	p := readBytes(t, b)
	ec := pgpKey(t, must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)))
	if _, err := p.SignatureHeader(nil, SignOptions{Key: ec}); err == nil || !strings.Contains(err.Error(), "ECDSA") || errors.Is(err, ErrCorrupt) {
		t.Errorf("ECDSA key: %v", err)
	}
	if _, err := p.SignatureHeader(nil, SignOptions{}); err == nil {
		t.Error("no key: no error")
	}

	// A main header without an immutable region (RPM v3) reads, but rpm
	// cannot sign it and neither can we.
	legacy := synth(synthOpts{reserved: 8, payload: []byte("payload"), noMainRegion: true})
	lp := readBytes(t, legacy)
	if lp.main.region {
		t.Fatal("legacy header has a region")
	}
	if err := lp.Verify(bytes.NewReader(legacy)); err != nil {
		t.Errorf("Verify of an RPM v3 package: %v", err)
	}
	_, err := lp.SignatureHeader(bytes.NewReader(legacy), SignOptions{Key: pgpKey(t, ed25519Key())})
	if err == nil || !strings.Contains(err.Error(), "immutable region") || errors.Is(err, ErrCorrupt) {
		t.Errorf("RPM v3 package: %v", err)
	}
}

// TestSignOldSignatureHeader signs a package whose signature header has no
// region, as very old packages: the new header has one, and rpmkeys accepts
// the result.
func TestSignOldSignatureHeader(t *testing.T) {
	k := pgpKey(t, rsa2048Key())
	old := synth(synthOpts{reserved: -1, payload: []byte("payload"), noSigRegion: true})
	if readBytes(t, old).sig.region {
		t.Fatal("signature header has a region")
	}
	out := signBytes(t, old, SignOptions{Key: k, Time: testSigTime})
	if !readBytes(t, out).sig.region {
		t.Error("new signature header has no region")
	}
	requireChecksig(t, rpmDB(t, k), out, headerSigLine(k))
}
