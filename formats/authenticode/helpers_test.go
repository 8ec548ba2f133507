package authenticode

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/artifacts"
)

// The real images, extracted from Debian's archive by the project's script.
var imageNames = []string{"arm64/shim.efi", "arm64/grub.efi", "arm64/kernel.efi", "amd64/shim.efi", "amd64/grub.efi", "amd64/kernel.efi"}

// images returns imageNames, without the kernels (the largest images:
// most of the hashing and of the external tools' time) under -short.
func images() []string {
	if !testing.Short() {
		return imageNames
	}
	var out []string
	for _, n := range imageNames {
		if !strings.HasSuffix(n, "/kernel.efi") {
			out = append(out, n)
		}
	}
	return out
}

// efiDir returns the directory holding Debian's unsigned EFI images
// (skipped without them, except in CI).
func efiDir(t testing.TB) string { return artifacts.EFIImages(t) }

// run runs a command and returns its combined output and whether it
// exited 0.
func run(t testing.TB, name string, args ...string) (string, bool) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return string(out), err == nil
}

// mustRun runs a command that has to succeed.
func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, ok := run(t, name, args...)
	if !ok {
		t.Fatalf("%s %s failed:\n%s", name, strings.Join(args, " "), out)
	}
	return out
}

// keyKind is a kind of signer key.
type keyKind string

const (
	rsa2048 keyKind = "RSA-2048"
	rsa4096 keyKind = "RSA-4096"
	p256    keyKind = "ECDSA-P256"
)

var (
	keyMu    sync.Mutex
	keyCache = map[string]crypto.Signer{}
)

// testKey returns a key of the kind, the same one for the same name
// within a test binary (RSA-4096 generation is slow).
func testKey(t testing.TB, kind keyKind, name string) crypto.Signer {
	t.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	id := string(kind) + "/" + name
	if k, ok := keyCache[id]; ok {
		return k
	}
	var k crypto.Signer
	var err error
	switch kind {
	case rsa2048:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case rsa4096:
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	case p256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	keyCache[id] = k
	return k
}

// opaqueSigner hides the key's type, as a PKCS#11 key does, and counts the
// calls to Sign.
type opaqueSigner struct {
	inner crypto.Signer
	calls atomic.Int32
}

func (s *opaqueSigner) Public() crypto.PublicKey { return s.inner.Public() }

func (s *opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.calls.Add(1)
	return s.inner.Sign(r, digest, opts)
}

// pki is a throwaway CA with one code-signing certificate.
type pki struct {
	name           string
	ca             *x509.Certificate
	caKey          crypto.Signer
	leaf           *x509.Certificate
	key            crypto.Signer
	caPEM, leafPEM string // files
	keyPEM         string // the leaf's private key, PKCS#8
}

var serial atomic.Int64

func issue(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(1000 + serial.Add(1))
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newPKI makes an RSA-2048 CA "<name> CA" and a code-signing certificate
// "<name> Signer" for a key of the given kind, and writes them as PEM
// files into dir. The keys are shared: one for all CAs, one per kind for
// the signers (key generation is slow, and no test needs two signers of
// the same kind).
func newPKI(t testing.TB, dir, name string, kind keyKind) *pki {
	t.Helper()
	caKey := testKey(t, rsa2048, "CA")
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " CA", Organization: []string{"signet tests"}},
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	ca = issue(t, ca, ca, caKey.Public(), caKey)
	key := testKey(t, kind, "signer")
	leaf := issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name + " Signer", Organization: []string{"signet tests"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}, ca, key.Public(), caKey)
	p := &pki{name: name, ca: ca, caKey: caKey, leaf: leaf, key: key}
	p.caPEM = writePEM(t, filepath.Join(dir, name+"-ca.pem"), "CERTIFICATE", ca.Raw)
	p.leafPEM = writePEM(t, filepath.Join(dir, name+"-signer.pem"), "CERTIFICATE", leaf.Raw)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p.keyPEM = writePEM(t, filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", pk)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openFile opens a file for the rest of the test and returns its size.
func openFile(t testing.TB, path string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signFile signs the image at in into out and returns the digest.
func signFile(t testing.TB, in, out string, p *pki, opts SignOptions) []byte {
	t.Helper()
	img := parseFile(t, in)
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if opts.Certificate == nil {
		opts.Certificate = p.leaf
	}
	s := &opaqueSigner{inner: p.key}
	d, err := Sign(o, img, s, opts)
	if err != nil {
		t.Fatalf("signing %s: %v", in, err)
	}
	if n := s.calls.Load(); n != 1 {
		t.Fatalf("signer called %d times, want 1", n)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	return d
}

// parseFile parses an image file, which stays open until the test ends.
func parseFile(t testing.TB, path string) *Image {
	t.Helper()
	f, size := openFile(t, path)
	img, err := Parse(f, size)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return img
}

func parseBytes(t testing.TB, b []byte) *Image {
	t.Helper()
	img, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustDigest(t testing.TB, img *Image) []byte {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The reference implementations below work on the whole file in memory,
// in the plainest way, to check the streaming code against.

// peFields locates the header fields of a PE image in memory.
type peFields struct {
	checksum, certDir, sizeOfHeaders int
	sections                         [][2]int // raw data [off, off+size)
	certOff, certSize                int
}

func refFields(t testing.TB, b []byte) peFields {
	t.Helper()
	pe := int(binary.LittleEndian.Uint32(b[0x3c:]))
	nsec := int(binary.LittleEndian.Uint16(b[pe+6:]))
	optSize := int(binary.LittleEndian.Uint16(b[pe+20:]))
	opt := pe + 24
	dirs := opt + 96
	if binary.LittleEndian.Uint16(b[opt:]) == 0x20b {
		dirs = opt + 112
	}
	f := peFields{
		checksum:      opt + 64,
		certDir:       dirs + 32,
		sizeOfHeaders: int(binary.LittleEndian.Uint32(b[opt+60:])),
		certOff:       int(binary.LittleEndian.Uint32(b[dirs+32:])),
		certSize:      int(binary.LittleEndian.Uint32(b[dirs+36:])),
	}
	for i := 0; i < nsec; i++ {
		s := opt + optSize + 40*i
		size := int(binary.LittleEndian.Uint32(b[s+16:]))
		off := int(binary.LittleEndian.Uint32(b[s+20:]))
		if size > 0 {
			f.sections = append(f.sections, [2]int{off, off + size})
		}
	}
	sort.SliceStable(f.sections, func(i, j int) bool { return f.sections[i][0] < f.sections[j][0] })
	return f
}

// refDigest is the Authenticode digest of b, with or without padding the
// data before the certificate table to 8 bytes.
func refDigest(t testing.TB, b []byte, pad bool) []byte {
	t.Helper()
	f := refFields(t, b)
	data := b
	if f.certSize > 0 {
		data = b[:f.certOff]
	}
	if pad {
		data = append(bytes.Clone(data), make([]byte, (8-len(data)%8)%8)...)
	}
	h := sha256.New()
	h.Write(data[:f.checksum])
	h.Write(data[f.checksum+4 : f.certDir])
	h.Write(data[f.certDir+8 : f.sizeOfHeaders])
	hashed := f.sizeOfHeaders
	for _, s := range f.sections {
		h.Write(data[s[0]:s[1]])
		hashed += s[1] - s[0]
	}
	if hashed < len(data) {
		h.Write(data[hashed:])
	}
	return h.Sum(nil)
}

// refChecksum is the PE checksum of b, computed word by word as Microsoft's
// CheckSumMappedFile does.
func refChecksum(t testing.TB, b []byte) uint32 {
	t.Helper()
	ck := refFields(t, b).checksum
	b = bytes.Clone(b)
	clear(b[ck : ck+4])
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i])
		if i+1 < len(b) {
			w |= uint32(b[i+1]) << 8
		}
		sum += w
		sum = sum&0xffff + sum>>16
	}
	return sum + uint32(len(b))
}

func storedChecksum(t testing.TB, b []byte) uint32 {
	return binary.LittleEndian.Uint32(b[refFields(t, b).checksum:])
}
