package rpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/internal/testenv"
)

var (
	testCreated = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	testSigTime = testCreated.Add(time.Hour)
	testUID     = "Signet RPM Test <signet-rpm-test@example.org>"
)

// Software keys, each made once.
var (
	rsa2048Key = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	rsa4096Key = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 4096)) })
	ed25519Key = sync.OnceValue(func() crypto.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return must(k, err)
	})
	p256Key = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func pgpKey(t testing.TB, s crypto.Signer) *openpgp.Key {
	t.Helper()
	k, err := openpgp.NewKey(s, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// shortKeyID is how rpmkeys names a key: the low 32 bits of its key id.
func shortKeyID(k *openpgp.Key) string { return fmt.Sprintf("%08x", uint32(k.KeyID())) }

// testdataDir returns the testdata directory of the Go module
// github.com/sassoftware/go-rpmutils v0.4.0, downloaded into the module
// cache by the go command: real packages with every payload compression.
var testdataDir = sync.OnceValues(func() (string, error) {
	tmp, err := os.MkdirTemp("", "signet-rpm-testdata-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	// go test puts its own go command first in PATH.
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/sassoftware/go-rpmutils@v0.4.0")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download: %v\n%s%s", err, out, stderr.Bytes())
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("go mod download output: %v", err)
	}
	if mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("go mod download: %q", mod.Error)
	}
	return filepath.Join(mod.Dir, "testdata"), nil
})

// testRPM is one package of go-rpmutils' testdata and what rpm -qp says of
// it.
type testRPM struct {
	file     string
	nevra    string
	sigmd5   string
	reserved bool // has RESERVEDSPACE, so signing keeps the size
	payload  bool // has a payload digest
	sha256   bool // has a SHA-256 header digest
}

var testRPMs = []testRPM{
	{"empty-0.1-1.x86_64.rpm", "empty-0:0.1-1.x86_64", "9c026d6c46f3facd395d8336ff595762", true, true, true},
	{"one-epoch-0.1-1.x86_64.rpm", "one-epoch-1:0.1-1.x86_64", "bf06f2b3a4be907d2f0304b89e842bbc", true, true, true},
	{"zero-epoch-0.1-1.x86_64.rpm", "zero-epoch-0:0.1-1.x86_64", "74b759329770104f3e12341eca8b42ea", true, true, true},
	{"payload-test-0.1-w.ufdio.x86_64.rpm", "payload-test-0.1-w.ufdio.x86_64", "4bc2b0caf453e5e7bbf55cfe3588221d", true, true, true},
	{"payload-test-0.1-w9.gzdio.x86_64.rpm", "payload-test-0.1-w9.gzdio.x86_64", "47e7ade32ec69a51a17ee41a2c8f3cce", true, true, true},
	{"payload-test-0.1-w9.bzdio.x86_64.rpm", "payload-test-0.1-w9.bzdio.x86_64", "b8b514a26b69affe37d6d2c658c48695", true, true, true},
	{"payload-test-0.1-w6.xzdio.x86_64.rpm", "payload-test-0.1-w6.xzdio.x86_64", "3af84bab9ac22bd2167180432e7ceed2", true, true, true},
	{"payload-test-0.1-w6.lzdio.x86_64.rpm", "payload-test-0.1-w6.lzdio.x86_64", "7edd65ab80ee8b54ce4c30d5a2d66253", true, true, true},
	{"payload-test-0.1-w3.zstdio.x86_64.rpm", "payload-test-0.1-w3.zstdio.x86_64", "7b90a3156e1dd797890cec934f2a1411", true, true, true},
	// An rpm 4.7 package: SHA-1 header digest only, MD5 file digests, no
	// payload digest and no reserved space.
	{"simple-1.0.1-1.i386.rpm", "simple-1.0.1-1.i386", "be63e378cf0cbfb5523f942ddd2326b6", false, false, false},
}

const ufdio = "payload-test-0.1-w.ufdio.x86_64.rpm"

// loadRPM returns a testdata package's bytes.
func loadRPM(t testing.TB, name string) []byte {
	t.Helper()
	dir, err := testdataDir()
	if err != nil {
		testenv.Unavailable(t, "the go-rpmutils test packages are not available: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readBytes(t testing.TB, b []byte) *Package {
	t.Helper()
	p, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return p
}

func signBytes(t testing.TB, b []byte, opts SignOptions) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Sign(&out, bytes.NewReader(b), readBytes(t, b), opts); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return out.Bytes()
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rpmDB makes a throwaway rpm database that trusts keys.
func rpmDB(t testing.TB, keys ...*openpgp.Key) string {
	t.Helper()
	testenv.MustHave(t, "rpmkeys")
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	for i, k := range keys {
		cert, err := k.ArmoredCertificate([]string{testUID}, testSigTime)
		if err != nil {
			t.Fatal(err)
		}
		f := writeFile(t, dir, fmt.Sprintf("key%d.asc", i), cert)
		if out, err := exec.Command("rpmkeys", "--dbpath", db, "--import", f).CombinedOutput(); err != nil {
			t.Fatalf("rpmkeys --import: %v\n%s", err, out)
		}
	}
	return db
}

// checksig runs rpmkeys --checksig -v on pkg with the keys in db.
func checksig(t testing.TB, db string, pkg []byte) (string, error) {
	t.Helper()
	f := writeFile(t, t.TempDir(), "p.rpm", pkg)
	out, err := exec.Command("rpmkeys", "--dbpath", db, "--checksig", "-v", f).CombinedOutput()
	return string(out), err
}

// requireChecksig requires rpmkeys --checksig to pass, to report every
// digest and signature OK, and to print each of want (whole lines, without
// the indentation).
func requireChecksig(t testing.TB, db string, pkg []byte, want ...string) []string {
	t.Helper()
	out, err := checksig(t, db, pkg)
	if err != nil {
		t.Fatalf("rpmkeys --checksig: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")[1:] // after "file:"
	got := map[string]bool{}
	for i, l := range lines {
		l = strings.TrimSpace(l)
		lines[i] = l
		got[l] = true
		if !strings.HasSuffix(l, ": OK") {
			t.Errorf("rpmkeys --checksig reports %q:\n%s", l, out)
		}
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("rpmkeys --checksig output lacks %q:\n%s", w, out)
		}
	}
	return lines
}

// headerSigLine and v3SigLine are the lines rpmkeys prints for a good
// header-only and header+payload signature by k.
func headerSigLine(k *openpgp.Key) string { return "Header " + v3SigLine(k) }

func v3SigLine(k *openpgp.Key) string {
	algo := "RSA"
	if _, ok := k.Public().(ed25519.PublicKey); ok {
		algo = "EdDSA"
	}
	return fmt.Sprintf("V4 %s/SHA256 Signature, key ID %s: OK", algo, shortKeyID(k))
}

// sigTags returns the tags of a package's signature header, in order.
func sigTags(p *Package) []uint32 {
	var tags []uint32
	for _, e := range p.sig.entries {
		tags = append(tags, e.tag)
	}
	return tags
}

func hasTag(p *Package, tag uint32) bool {
	_, ok := p.sig.byTag[tag]
	return ok
}

// synthPackage builds a small package that is valid as far as rpmkeys
// --checksig can tell (the payload is not a cpio archive): a lead, a
// signature header with SHA-1 and SHA-256 header digests, size, MD5 and
// reserved bytes of reserved space (none if negative), a main header with
// an immutable region, a name, version, release, arch, source package and
// payload digest, and a payload.
func synthPackage(reserved int, payload []byte) []byte {
	return synth(synthOpts{reserved: reserved, payload: payload})
}

type synthOpts struct {
	reserved        int // bytes of reserved space; negative for none
	payload         []byte
	noPayloadDigest bool // leave out the payload digest (needs V3)
	noMainRegion    bool // main header without its region (RPM v3)
	noSigRegion     bool // signature header without its region (very old)
}

func synth(o synthOpts) []byte {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	str := func(s string) []byte { return append([]byte(s), 0) }
	pd := sha256.Sum256(o.payload)
	items := []tagData{
		{tagName, typeString, 1, str("synth")},
		{tagVersion, typeString, 1, str("1.0")},
		{tagRelease, typeString, 1, str("1")},
		{tagArch, typeString, 1, str("noarch")},
		{tagSourceRPM, typeString, 1, str("synth-1.0-1.src.rpm")},
	}
	if !o.noPayloadDigest {
		items = append(items,
			tagData{tagPayloadDigest, typeStringArray, 1, str(hex.EncodeToString(pd[:]))},
			tagData{tagPayloadAlgo, typeInt32, 1, u32(8)})
	}
	build := func(region uint32, noRegion bool, items []tagData) []byte {
		if noRegion {
			return buildRegionless(items)
		}
		return buildHeader(region, items)
	}
	main := build(tagHeaderImmutable, o.noMainRegion, items)
	rest := append(append([]byte(nil), main...), o.payload...)
	s1 := sha1.Sum(main)
	s256 := sha256.Sum256(main)
	m := md5.Sum(rest)
	items = []tagData{
		{sigTagSHA1, typeString, 1, str(hex.EncodeToString(s1[:]))},
		{sigTagSHA256, typeString, 1, str(hex.EncodeToString(s256[:]))},
		{sigTagSize, typeInt32, 1, u32(uint32(len(rest)))},
		{sigTagMD5, typeBin, 16, m[:]},
	}
	if o.reserved >= 0 {
		items = append(items, tagData{sigTagReserved, typeBin, uint32(o.reserved), make([]byte, o.reserved)})
	}
	sig := build(tagHeaderSignatures, o.noSigRegion, items)
	lead := make([]byte, leadSize)
	copy(lead, []byte{0xed, 0xab, 0xee, 0xdb, 3, 0, 0, 0, 0, 1})
	copy(lead[10:], "synth-1.0-1")
	lead[77], lead[79] = 1, sigTypeHeader
	out := append(lead, sig...)
	out = append(out, make([]byte, pad8(int64(len(sig)))-int64(len(sig)))...)
	return append(out, rest...)
}

// buildRegionless lays out a header without a region entry, as RPM v3
// packages have them.
func buildRegionless(items []tagData) []byte {
	var index, data []byte
	for _, it := range items {
		for int64(len(data))%typeAlign[it.typ] != 0 {
			data = append(data, 0)
		}
		index = appendEntry(index, it.tag, it.typ, uint32(len(data)), it.count)
		data = append(data, it.data...)
	}
	out := append([]byte(nil), headerMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(items)))
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	return append(append(out, index...), data...)
}

func requireCorrupt(t testing.TB, err error, what string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: got %v, want an error wrapping ErrCorrupt", what, err)
	}
}
