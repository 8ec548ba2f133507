package rpm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// TestReadTestdata reads every go-rpmutils package (every payload
// compression, and an rpm 4.7 package) and checks what Read reports against
// what rpm -qp says, then VerifyHeader and Verify.
func TestReadTestdata(t *testing.T) {
	for _, tr := range testRPMs {
		t.Run(tr.file, func(t *testing.T) {
			b := loadRPM(t, tr.file)
			p := readBytes(t, b)
			if got := p.NEVRA().String(); got != tr.nevra {
				t.Errorf("NEVRA %q, want %q", got, tr.nevra)
			}
			if p.IsSource() {
				t.Error("IsSource true for a binary package")
			}
			if got := hex.EncodeToString(p.SigMD5()); got != tr.sigmd5 {
				t.Errorf("SigMD5 %s, want %s", got, tr.sigmd5)
			}
			if p.HasPayloadDigest() != tr.payload {
				t.Errorf("HasPayloadDigest %v, want %v", p.HasPayloadDigest(), tr.payload)
			}
			if p.SigOffset != 96 || p.MainOffset%8 != 0 || p.MainOffset <= p.SigOffset ||
				p.PayloadOffset <= p.MainOffset || p.Size != int64(len(b)) {
				t.Errorf("offsets: sig %d main %d payload %d size %d (file %d)", p.SigOffset, p.MainOffset, p.PayloadOffset, p.Size, len(b))
			}
			sum := sha256.Sum256(b[p.MainOffset:p.PayloadOffset])
			if !bytes.Equal(p.HeaderSHA256(), sum[:]) {
				t.Errorf("HeaderSHA256 %x, want %x", p.HeaderSHA256(), sum)
			}
			if s, ok, _ := p.sig.str(sigTagSHA256); ok != tr.sha256 || (ok && s != hex.EncodeToString(sum[:])) {
				t.Errorf("signature header SHA-256 %q (present %v), want %x", s, ok, sum)
			}
			if err := p.VerifyHeader(); err != nil {
				t.Errorf("VerifyHeader: %v", err)
			}
			if err := p.Verify(bytes.NewReader(b)); err != nil {
				t.Errorf("Verify: %v", err)
			}

			// A prefix that ends with the main header reads the same.
			q, err := Read(bytes.NewReader(b[:p.PayloadOffset]), p.PayloadOffset)
			if err != nil {
				t.Fatalf("Read of the first %d bytes: %v", p.PayloadOffset, err)
			}
			if q.NEVRA() != p.NEVRA() || q.PayloadOffset != p.PayloadOffset || q.VerifyHeader() != nil {
				t.Errorf("prefix read differs: %v %d %v", q.NEVRA(), q.PayloadOffset, q.VerifyHeader())
			}
			requireCorrupt(t, q.Verify(bytes.NewReader(b[:p.PayloadOffset])), "Verify of a prefix")
		})
	}
}

// TestVerifyCorrupt flips single bytes of real packages: in the payload
// (payload digest or, in the old package, MD5), in the main header (header
// digests), and adds trailing bytes (size).
func TestVerifyCorrupt(t *testing.T) {
	key := pgpKey(t, rsa2048Key())
	cases := []struct {
		file, what string
		edit       func(b []byte, p *Package) []byte
		headerOK   bool // VerifyHeader still passes
		msg        string
	}{
		{ufdio, "payload byte", func(b []byte, p *Package) []byte { b[len(b)-10] ^= 1; return b }, true, "payload SHA-256 digest mismatch"},
		{"payload-test-0.1-w3.zstdio.x86_64.rpm", "first payload byte", func(b []byte, p *Package) []byte { b[p.PayloadOffset] ^= 0x80; return b }, true, "payload SHA-256 digest mismatch"},
		{"simple-1.0.1-1.i386.rpm", "payload byte", func(b []byte, p *Package) []byte { b[len(b)-1] ^= 1; return b }, true, "MD5 digest mismatch"},
		{ufdio, "trailing byte", func(b []byte, p *Package) []byte { return append(b, 0) }, true, "truncated or extended"},
		{ufdio, "last byte cut", func(b []byte, p *Package) []byte { return b[:len(b)-1] }, true, "truncated or extended"},
		{ufdio, "main header data byte", func(b []byte, p *Package) []byte { b[p.PayloadOffset-40] ^= 1; return b }, false, "main header SHA-256 digest mismatch"},
		{"simple-1.0.1-1.i386.rpm", "main header data byte", func(b []byte, p *Package) []byte { b[p.PayloadOffset-40] ^= 1; return b }, false, "main header SHA-1 digest mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.what, func(t *testing.T) {
			orig := loadRPM(t, tc.file)
			b := tc.edit(append([]byte(nil), orig...), readBytes(t, orig))
			p := readBytes(t, b)
			if err := p.VerifyHeader(); (err == nil) != tc.headerOK {
				t.Errorf("VerifyHeader: %v", err)
			}
			err := p.Verify(bytes.NewReader(b))
			requireCorrupt(t, err, "Verify")
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Verify: %v, want a message with %q", err, tc.msg)
			}
			var out bytes.Buffer
			requireCorrupt(t, Sign(&out, bytes.NewReader(b), p, SignOptions{Key: key, Time: testSigTime}), "Sign")
			// A cut package looks like a prefix: the V3 signature needs
			// what is missing.
			if _, err := p.SignatureHeader(bytes.NewReader(b), SignOptions{Key: key, Time: testSigTime, V3: true}); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrIncomplete) {
				t.Errorf("SignatureHeader with V3: %v, want ErrCorrupt or ErrIncomplete", err)
			}
			if out, err := checksig(t, rpmDB(t, key), b); err == nil {
				t.Errorf("rpmkeys --checksig accepts the corrupt package:\n%s", out)
			}
		})
	}
}

// TestReadTruncated reads every prefix of a package that is shorter than
// its headers.
func TestReadTruncated(t *testing.T) {
	b := loadRPM(t, ufdio)
	p := readBytes(t, b)
	for n := int64(0); n < p.PayloadOffset; n++ {
		_, err := Read(bytes.NewReader(b[:n]), n)
		requireCorrupt(t, err, "Read of a truncated package")
	}
	// A reader shorter than the size it is said to have.
	_, err := Read(bytes.NewReader(b[:p.MainOffset+20]), int64(len(b)))
	requireCorrupt(t, err, "Read of a short reader")
	if !strings.Contains(err.Error(), "truncated main header") {
		t.Errorf("message %q does not say what is truncated", err)
	}
}

// TestReadNotRPM reads things that are not packages.
func TestReadNotRPM(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(synthPackage(8, []byte("payload")))
	w.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 1<<16)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	lead := synthPackage(8, nil)[:96]
	for name, b := range map[string][]byte{
		"empty":             nil,
		"gzip":              gz.Bytes(),
		"random":            random,
		"lead only":         lead,
		"random after lead": append(append([]byte(nil), lead...), random...),
		"RPM v2 lead":       append([]byte{0xed, 0xab, 0xee, 0xdb, 2}, make([]byte, 200)...),
	} {
		var err error
		if n := allocatedBy(func() { _, err = Read(bytes.NewReader(b), int64(len(b))) }); n > 64<<10 {
			t.Errorf("%s: Read allocated %d bytes", name, n)
		}
		requireCorrupt(t, err, name)
	}
}

// TestVerifyHeaderNoDigest: a signature header with neither header digest
// proves nothing about the main header.
func TestVerifyHeaderNoDigest(t *testing.T) {
	orig := synthPackage(8, []byte("payload"))
	p := readBytes(t, orig)
	var items []tagData
	for _, e := range p.sig.entries[1:] {
		if e.tag != sigTagSHA1 && e.tag != sigTagSHA256 {
			items = append(items, tagData{e.tag, e.typ, e.count, p.sig.bytes(&e)})
		}
	}
	b := spliceRaw(orig, p, buildHeader(tagHeaderSignatures, items))
	q := readBytes(t, b)
	err := q.VerifyHeader()
	requireCorrupt(t, err, "VerifyHeader")
	if !strings.Contains(err.Error(), "no header digest") {
		t.Errorf("VerifyHeader: %v", err)
	}
	requireCorrupt(t, q.Verify(bytes.NewReader(b)), "Verify")
	_, err = q.SignatureHeader(nil, SignOptions{Key: pgpKey(t, ed25519Key())})
	requireCorrupt(t, err, "SignatureHeader")
}

// TestReadMalformed reads packages with one field of a header made wrong,
// including counts and sizes that would need gigabytes if believed, and
// checks that Read refuses them without allocating much.
func TestReadMalformed(t *testing.T) {
	good := synthPackage(8, []byte("payload"))
	p := readBytes(t, good)
	sigIdx := func(i int) int { return int(p.SigOffset) + introSize + entrySize*i }
	mainIdx := func(i int) int { return int(p.MainOffset) + introSize + entrySize*i }
	mainEntry := func(tag uint32) int {
		for i, e := range p.main.entries {
			if e.tag == tag {
				return mainIdx(i)
			}
		}
		t.Fatalf("no tag %d", tag)
		return 0
	}
	put := func(b []byte, off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
	mainTrailer := int(p.MainOffset) + introSize + entrySize*len(p.main.entries) + int(p.main.entries[0].off)

	cases := map[string]func(b []byte){
		"signature il 2^32-1":       func(b []byte) { put(b, sigIdx(0)-8, 0xffffffff) },
		"signature dl 2^32-1":       func(b []byte) { put(b, sigIdx(0)-4, 0xffffffff) },
		"signature il 33":           func(b []byte) { put(b, sigIdx(0)-8, 33) },
		"signature dl 64 MiB":       func(b []byte) { put(b, sigIdx(0)-4, 64<<20) },
		"signature il 0":            func(b []byte) { put(b, sigIdx(0)-8, 0) },
		"signature magic":           func(b []byte) { b[p.SigOffset+1] ^= 1 },
		"main il 65535":             func(b []byte) { put(b, mainIdx(0)-8, 0xffff) },
		"main il 65536":             func(b []byte) { put(b, mainIdx(0)-8, 0x10000) },
		"main dl 256 MiB":           func(b []byte) { put(b, mainIdx(0)-4, 0x0fffffff) },
		"main dl 2^32-1":            func(b []byte) { put(b, mainIdx(0)-4, 0xffffffff) },
		"main magic":                func(b []byte) { b[p.MainOffset] = 0 },
		"lead signature type":       func(b []byte) { b[79] = 1 },
		"signature region type":     func(b []byte) { put(b, sigIdx(0)+4, typeString) },
		"signature region offset":   func(b []byte) { put(b, sigIdx(0)+8, 0x7ffffff0) },
		"signature region negative": func(b []byte) { put(b, sigIdx(0)+8, 0xfffffff0) },
		"main region trailer tag":   func(b []byte) { put(b, mainTrailer, 62) },
		"main region trailer count": func(b []byte) { put(b, mainTrailer+8, uint32(-int32(entrySize*(len(p.main.entries)-1)))) },
		"main string count 2":       func(b []byte) { put(b, mainEntry(tagName)+12, 2) },
		"main string array 2^32-1":  func(b []byte) { put(b, mainEntry(tagPayloadDigest)+12, 0xffffffff) },
		"main int32 count 2^32-1":   func(b []byte) { put(b, mainEntry(tagPayloadAlgo)+12, 0xffffffff) },
		"main int32 misaligned": func(b []byte) {
			put(b, mainEntry(tagPayloadAlgo)+8, uint32(p.main.entries[len(p.main.entries)-1].off+1))
		},
		"main offset past data":      func(b []byte) { put(b, mainEntry(tagName)+8, 0x00ffffff) },
		"main offset negative":       func(b []byte) { put(b, mainEntry(tagName)+8, 0xffffff00) },
		"main offsets overlap":       func(b []byte) { put(b, mainEntry(tagVersion)+8, 0) },
		"main type 0":                func(b []byte) { put(b, mainEntry(tagName)+4, typeNull) },
		"main type 10":               func(b []byte) { put(b, mainEntry(tagName)+4, 10) },
		"main tag 99":                func(b []byte) { put(b, mainEntry(tagName), 99) },
		"main count 0":               func(b []byte) { put(b, mainEntry(tagPayloadAlgo)+12, 0) },
		"main name is not a string":  func(b []byte) { put(b, mainEntry(tagName)+4, typeBin) },
		"main version tag renamed":   func(b []byte) { put(b, mainEntry(tagVersion), 1001+5000) },
		"main string without NUL":    func(b []byte) { b[int(p.MainOffset)+introSize+entrySize*len(p.main.entries)+5] = 'x' },
		"signature tag repeated":     func(b []byte) { put(b, sigIdx(2), sigTagSHA1) },
		"main data into the trailer": func(b []byte) { put(b, mainEntry(tagPayloadAlgo)+8, uint32(p.main.entries[0].off)) },
	}
	for name, edit := range cases {
		b := append([]byte(nil), good...)
		edit(b)
		var err error
		allocated := allocatedBy(func() { _, err = Read(bytes.NewReader(b), int64(len(b))) })
		if name == "signature tag repeated" && err == nil {
			// The header is well-formed; its repeated digest is refused
			// where it is used.
			q := readBytes(t, b)
			err = q.VerifyHeader()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
			continue
		}
		if allocated > 1<<20 {
			t.Errorf("%s: Read allocated %d bytes", name, allocated)
		}
		t.Logf("%s: %v", name, err)
	}
}

// allocatedBy returns how many bytes f allocates.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestNEVRAString checks the name-[epoch:]version-release.arch form.
func TestNEVRAString(t *testing.T) {
	for _, tc := range []struct {
		n    NEVRA
		want string
	}{
		{NEVRA{"bash", "", "5.2", "1.fc40", "x86_64"}, "bash-5.2-1.fc40.x86_64"},
		{NEVRA{"bash", "0", "5.2", "1.fc40", "src"}, "bash-0:5.2-1.fc40.src"},
		{NEVRA{"perl", "4", "5.38", "2", "noarch"}, "perl-4:5.38-2.noarch"},
	} {
		if got := tc.n.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.n, got, tc.want)
		}
	}
}
