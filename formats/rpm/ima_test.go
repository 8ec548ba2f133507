package rpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// imaSpec builds a package with a directory, regular files (one empty) and
// a symbolic link: files with and without digests.
const imaSpec = `Name: signet-ima
Version: 1
Release: 1
Summary: IMA test package
License: MIT
BuildArch: noarch
%description
Files of every kind for IMA signing tests.
%install
mkdir -p %{buildroot}/usr/share/signet-ima/dir
echo one > %{buildroot}/usr/share/signet-ima/a.txt
seq 1 5000 > %{buildroot}/usr/share/signet-ima/b.txt
: > %{buildroot}/usr/share/signet-ima/empty
ln -s a.txt %{buildroot}/usr/share/signet-ima/link
%files
/usr/share/signet-ima
`

// buildRPMs has rpmbuild build imaSpec with the given macro definitions
// ("name value") and returns the binary and the source package.
func buildRPMs(t *testing.T, defines ...string) (bin, src []byte) {
	t.Helper()
	testenv.MustHave(t, "rpmbuild")
	dir := t.TempDir()
	args := []string{"--define", "_topdir " + filepath.Join(dir, "top")}
	for _, d := range defines {
		args = append(args, "--define", d)
	}
	args = append(args, "-ba", writeFile(t, dir, "signet-ima.spec", []byte(imaSpec)))
	if out, err := exec.Command("rpmbuild", args...).CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "top/RPMS/noarch/signet-ima-1-1.noarch.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	src, err = os.ReadFile(filepath.Join(dir, "top/SRPMS/signet-ima-1-1.src.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	return bin, src
}

// fileNames returns the package's file paths in header order, from
// DIRNAMES (1118), DIRINDEXES (1116) and BASENAMES (1117).
func fileNames(t *testing.T, p *Package) []string {
	t.Helper()
	dirs := must(p.main.strs(1118))
	bases := must(p.main.strs(tagBaseNames))
	e := must(p.main.typed(1116, typeInt32))
	if e == nil || int(e.count) != len(bases) {
		t.Fatalf("DIRINDEXES %v for %d files", e, len(bases))
	}
	idx := p.main.bytes(e)
	names := make([]string, len(bases))
	for i, b := range bases {
		names[i] = dirs[binary.BigEndian.Uint32(idx[4*i:])] + b
	}
	return names
}

// selfSignedDER returns a self-signed certificate for key, the form
// evmctl ima_verify --key reads.
func selfSignedDER(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "signet IMA test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	return must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key))
}

// extractPayload unpacks the package's files into a new directory with
// rpm2cpio and cpio.
func extractPayload(t *testing.T, pkg []byte) string {
	t.Helper()
	testenv.MustHave(t, "rpm2cpio")
	testenv.MustHave(t, "cpio")
	dir := t.TempDir()
	archive, err := exec.Command("rpm2cpio", writeFile(t, t.TempDir(), "p.rpm", pkg)).Output()
	if err != nil {
		t.Fatalf("rpm2cpio: %v", err)
	}
	cpio := exec.Command("cpio", "-idm", "--quiet")
	cpio.Dir, cpio.Stdin = dir, bytes.NewReader(archive)
	if out, err := cpio.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	return dir
}

// TestIMA signs a built package's files with an ECDSA P-256 key and checks
// every file signature with evmctl ima_verify against the file extracted
// from the payload (signature in a .sig file, since it needs no xattr
// support), and that rpmkeys still accepts the package. It also signs from
// a prefix (head signing), and a source package, which gets no file
// signatures.
func TestIMA(t *testing.T) {
	testenv.MustHave(t, "evmctl")
	bin, src := buildRPMs(t)
	k := pgpKey(t, rsa2048Key())
	fk := p256Key()
	db := rpmDB(t, k)
	opts := SignOptions{Key: k, Time: testSigTime, FileSigner: fk}
	keyID := must(IMAKeyID(fk.Public()))

	out := signBytes(t, bin, opts)
	requireChecksig(t, db, out, headerSigLine(k), "Payload SHA256 digest: OK")
	q := readBytes(t, out)
	sigs := must(q.sig.strs(sigTagFileSigs))
	maxLen, ok, err := q.sig.uint32v(sigTagFileSigLen)
	if err != nil || !ok {
		t.Fatalf("no signature length tag: %v", err)
	}
	digests := must(q.main.strs(tagFileDigests))
	names := fileNames(t, q)
	if len(sigs) != len(names) || len(digests) != len(names) {
		t.Fatalf("%d signatures and %d digests for %d files", len(sigs), len(digests), len(names))
	}

	// rpm reads tags 274 and 275 as the files' IMA signatures, in order.
	query, err := exec.Command("rpm", "--dbpath", db, "-qp", "--qf", "[%{FILENAMES} %{FILESIGNATURES}\n]%{FILESIGNATURELENGTH}\n",
		writeFile(t, t.TempDir(), "p.rpm", out)).Output()
	if err != nil {
		t.Fatalf("rpm -qp: %v", err)
	}
	want := ""
	for i, name := range names {
		want += name + " " + sigs[i] + "\n"
	}
	if want += strconv.Itoa(int(maxLen)) + "\n"; string(query) != want {
		t.Errorf("rpm -qp reports the file signatures\n%s\nwant\n%s", query, want)
	}

	dir := extractPayload(t, out)
	cert := writeFile(t, t.TempDir(), "ima.der", selfSignedDER(t, fk))
	signed, longest := 0, 0
	for i, name := range names {
		if (sigs[i] == "") != (digests[i] == "") {
			t.Errorf("%s: digest %q but signature %q", name, digests[i], sigs[i])
		}
		if sigs[i] == "" {
			continue
		}
		signed++
		raw, err := hex.DecodeString(sigs[i])
		if err != nil || len(raw) < 9 {
			t.Fatalf("%s: bad signature %q", name, sigs[i])
		}
		if raw[0] != 3 || raw[1] != 2 || raw[2] != 4 || !bytes.Equal(raw[3:7], keyID[:]) || int(binary.BigEndian.Uint16(raw[7:])) != len(raw)-9 {
			t.Errorf("%s: signature header % x, want 03 02 04 %x and the length", name, raw[:9], keyID)
		}
		longest = max(longest, len(raw))
		path := filepath.Join(dir, name)
		writeFile(t, filepath.Dir(path), filepath.Base(path)+".sig", raw)
		if out, err := exec.Command("evmctl", "-v", "ima_verify", "--sigfile", "--key", cert, path).CombinedOutput(); err != nil {
			t.Errorf("evmctl ima_verify %s: %v\n%s", name, err, out)
		} else if !strings.Contains(string(out), "verification is OK") {
			t.Errorf("evmctl ima_verify %s says:\n%s", name, out)
		} else {
			t.Logf("evmctl ima_verify %s:\n%s", name, out)
		}
	}
	if signed != 3 || len(names)-signed != 3 {
		t.Errorf("%d of %d files signed, want 3 of 6 (a.txt, b.txt, empty)", signed, len(names))
	}
	if int(maxLen) != longest {
		t.Errorf("signature length tag %d, longest signature %d", maxLen, longest)
	}
	// The verifier does notice a changed file.
	a := filepath.Join(dir, "usr/share/signet-ima/a.txt")
	if err := os.WriteFile(a, []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("evmctl", "ima_verify", "--sigfile", "--key", cert, a).CombinedOutput(); err == nil {
		t.Errorf("evmctl ima_verify accepts a changed file:\n%s", out)
	} else {
		t.Logf("evmctl ima_verify of a changed file: %v\n%s", err, out)
	}

	// Head signing with file signatures.
	p := readBytes(t, bin)
	prefix := bin[:p.PayloadOffset]
	sh, err := readBytes(t, prefix).SignatureHeader(bytes.NewReader(prefix), opts)
	if err != nil {
		t.Fatal(err)
	}
	var spliced bytes.Buffer
	if err := Splice(&spliced, bytes.NewReader(bin), p, sh); err != nil {
		t.Fatal(err)
	}
	requireChecksig(t, db, spliced.Bytes(), headerSigLine(k))
	if s := must(readBytes(t, spliced.Bytes()).sig.strs(sigTagFileSigs)); len(s) != len(names) {
		t.Errorf("head signing: %d file signatures, want %d", len(s), len(names))
	}

	// A source package installs no files: no file signatures, as with
	// rpmsign.
	sp := readBytes(t, src)
	if !sp.IsSource() || sp.NEVRA().String() != "signet-ima-1-1.src" {
		t.Errorf("source package: IsSource %v, NEVRA %s", sp.IsSource(), sp.NEVRA())
	}
	srcOut := signBytes(t, src, opts)
	if sq := readBytes(t, srcOut); hasTag(sq, sigTagFileSigs) || hasTag(sq, sigTagFileSigLen) {
		t.Errorf("source package got file signatures: %v", sigTags(sq))
	}
	requireChecksig(t, db, srcOut, headerSigLine(k))
}

// TestIMARefusals: file signing keys other than ECDSA P-256, and packages
// whose file digests are MD5 or SHA-1.
func TestIMARefusals(t *testing.T) {
	k := pgpKey(t, ed25519Key())
	sign := func(pkg []byte, fs crypto.Signer) error {
		_, err := readBytes(t, pkg).SignatureHeader(bytes.NewReader(pkg), SignOptions{Key: k, FileSigner: fs})
		return err
	}
	bin, src := buildRPMs(t)
	p384 := must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	for name, fs := range map[string]crypto.Signer{"RSA": rsa2048Key(), "P-384": p384, "Ed25519": ed25519Key()} {
		// Refused even for a source package, which would get no file
		// signatures.
		for _, pkg := range [][]byte{bin, src} {
			if err := sign(pkg, fs); err == nil || !strings.Contains(err.Error(), "ECDSA P-256") {
				t.Errorf("%s file signing key: %v", name, err)
			}
		}
	}
	sha1Bin, _ := buildRPMs(t, "_binary_filedigest_algorithm 2")
	for name, pkg := range map[string][]byte{"SHA-1": sha1Bin, "MD5": loadRPM(t, "simple-1.0.1-1.i386.rpm")} {
		err := sign(pkg, p256Key())
		if err == nil || !strings.Contains(err.Error(), name+" file digests") || errors.Is(err, ErrCorrupt) {
			t.Errorf("%s file digests: %v", name, err)
		}
	}
}

// TestIMAKeyID checks IMAKeyID against the key id evmctl puts into the
// signatures it makes (sign_hash) with the same key, for P-256 and RSA.
func TestIMAKeyID(t *testing.T) {
	testenv.MustHave(t, "evmctl")
	for name, key := range map[string]crypto.Signer{"P-256": p256Key(), "RSA": rsa2048Key()} {
		der := must(x509.MarshalPKCS8PrivateKey(key))
		f := writeFile(t, t.TempDir(), "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		cmd := exec.Command("evmctl", "sign_hash", "--key", f)
		cmd.Stdin = strings.NewReader(strings.Repeat("ab", 32) + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: evmctl sign_hash: %v", name, err)
		}
		fields := strings.Fields(string(out))
		sig, err := hex.DecodeString(fields[len(fields)-1])
		if err != nil || len(sig) < 9 || sig[0] != 3 || sig[1] != 2 {
			t.Fatalf("%s: evmctl sign_hash output %q", name, out)
		}
		id := must(IMAKeyID(key.Public()))
		if !bytes.Equal(sig[3:7], id[:]) {
			t.Errorf("%s: evmctl's key id %x, IMAKeyID %x", name, sig[3:7], id)
		}
	}
}
