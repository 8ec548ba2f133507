package authenticode

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testenv"
)

// checkSignedBytes checks a signed image against the unsigned one it was
// made from: same bytes but for CheckSum and the certificate table entry,
// zero padding to 8, a CheckSum that the word-by-word reference computes,
// and a digest that the in-memory reference computes.
func checkSignedBytes(t *testing.T, orig, signed []byte, digest []byte) {
	t.Helper()
	f := refFields(t, orig)
	if len(signed)%8 != 0 {
		t.Errorf("signed image is %d bytes, not a multiple of 8", len(signed))
	}
	dataEnd := len(orig)
	if f.certSize > 0 {
		dataEnd = f.certOff
	}
	if len(signed) < dataEnd {
		t.Fatalf("signed image (%d bytes) is shorter than the image (%d)", len(signed), dataEnd)
	}
	a, b := bytes.Clone(orig[:dataEnd]), bytes.Clone(signed[:dataEnd])
	for _, x := range [][]byte{a, b} {
		clear(x[f.checksum : f.checksum+4])
		clear(x[f.certDir : f.certDir+8])
	}
	if !bytes.Equal(a, b) {
		t.Error("signing changed the image's bytes beyond CheckSum and the certificate table entry")
	}
	sf := refFields(t, signed)
	if want := (dataEnd + 7) &^ 7; sf.certOff != want {
		t.Errorf("certificate table at %#x, want %#x", sf.certOff, want)
	}
	if sf.certOff+sf.certSize != len(signed) {
		t.Errorf("certificate table %#x+%#x does not end the %#x-byte file", sf.certOff, sf.certSize, len(signed))
	}
	if pad := signed[dataEnd:sf.certOff]; !bytes.Equal(pad, make([]byte, len(pad))) {
		t.Errorf("padding before the certificate table is not zeros: % x", pad)
	}
	if got, want := storedChecksum(t, signed), refChecksum(t, signed); got != want {
		t.Errorf("CheckSum %#08x, the reference computes %#08x", got, want)
	}
	if want := refDigest(t, orig, true); !bytes.Equal(digest, want) {
		t.Errorf("Sign returned digest %x, the reference computes %x", digest, want)
	}
	if got := mustDigest(t, parseBytes(t, signed)); !bytes.Equal(got, digest) {
		t.Errorf("digest of the signed image %x, want %x", got, digest)
	}
}

// checkOurSignature checks that the last signature Signatures reads is the
// one just made.
func checkOurSignature(t *testing.T, signed []byte, digest []byte, p *pki, chain []*x509.Certificate) {
	t.Helper()
	sigs, err := parseBytes(t, signed).Signatures()
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) == 0 {
		t.Fatal("Signatures found none")
	}
	s := sigs[len(sigs)-1]
	if s.Signer == nil || !s.Signer.Equal(p.leaf) {
		t.Errorf("signer %v, want %v", s.Signer, p.leaf.Subject)
	}
	if s.DigestAlgorithm != "SHA-256" || !bytes.Equal(s.Digest, digest) {
		t.Errorf("signature carries %s %x, want SHA-256 %x", s.DigestAlgorithm, s.Digest, digest)
	}
	if len(s.Certificates) != 1+len(chain) {
		t.Errorf("signature carries %d certificates, want %d", len(s.Certificates), 1+len(chain))
	}
	if s.SigningTime.IsZero() || s.Nested {
		t.Errorf("signing time %v, nested %v", s.SigningTime, s.Nested)
	}
}

var (
	osslDigest   = regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)
	osslCurrent  = regexp.MustCompile(`Current PE checksum\s*:\s*([0-9A-Fa-f]+)`)
	osslComputed = regexp.MustCompile(`Calculated PE checksum\s*:\s*([0-9A-Fa-f]+)`)
)

// osslVerify runs osslsigncode verify, which must succeed with the digest
// and without a checksum complaint.
func osslVerify(t *testing.T, caFile, path string, digest []byte) string {
	t.Helper()
	out := mustRun(t, "osslsigncode", "verify", "-CAfile", caFile, "-in", path)
	m := osslDigest.FindStringSubmatch(out)
	if m == nil || !strings.EqualFold(m[1], hex.EncodeToString(digest)) {
		t.Errorf("osslsigncode calculated digest %v, want %x", m, digest)
	}
	// With a right CheckSum osslsigncode prints one "PE checksum" line;
	// with a wrong one, "Current" and "Calculated" and a warning.
	cur, calc := osslCurrent.FindStringSubmatch(out), osslComputed.FindStringSubmatch(out)
	if strings.Contains(out, "invalid PE checksum") || (cur != nil) != (calc != nil) || (cur != nil && !strings.EqualFold(cur[1], calc[1])) {
		t.Errorf("osslsigncode disagrees with the CheckSum:\n%s", out)
	}
	if !strings.Contains(out, "PE checksum") {
		t.Errorf("osslsigncode printed no PE checksum:\n%s", out)
	}
	if !strings.Contains(out, "Signature verification: ok") {
		t.Errorf("osslsigncode did not say the signature verifies:\n%s", out)
	}
	return out
}

func sbverifyOK(t *testing.T, certFile, path string) {
	t.Helper()
	out := mustRun(t, "sbverify", "--cert", certFile, path)
	if !strings.Contains(out, "Signature verification OK") {
		t.Errorf("sbverify --cert %s:\n%s", filepath.Base(certFile), out)
	}
}

// pesignSigners returns the signers' common names that pesign -S lists.
func pesignSigners(t *testing.T, path string) []string {
	t.Helper()
	out := mustRun(t, "pesign", "-S", "-i", path)
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(l, "The signer's common name is "); ok {
			names = append(names, n)
		}
	}
	if strings.Count(out, "certificate address is") != len(names) {
		t.Errorf("pesign -S listed signatures without a signer name:\n%s", out)
	}
	return names
}

// TestSignRealImages signs each of Debian's six unsigned images with an
// RSA-2048, an RSA-4096 and an ECDSA P-256 key and has sbverify,
// osslsigncode and pesign check the result.
func TestSignRealImages(t *testing.T) {
	dir := efiDir(t)
	testenv.MustHave(t, "sbverify", "osslsigncode", "pesign")
	tmp := t.TempDir()
	kinds := []keyKind{rsa2048, rsa4096, p256}
	pkis := map[keyKind]*pki{}
	for _, k := range kinds {
		pkis[k] = newPKI(t, tmp, string(k), k)
	}
	for _, name := range images() {
		orig, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kinds {
			p := pkis[k]
			t.Run(name+"/"+string(k), func(t *testing.T) {
				t.Parallel()
				in := filepath.Join(dir, name)
				if got, want := mustDigest(t, parseFile(t, in)), refDigest(t, orig, true); !bytes.Equal(got, want) {
					t.Fatalf("Digest %x, the reference computes %x", got, want)
				}
				out := filepath.Join(t.TempDir(), "signed.efi")
				// The signer's certificate alone, as sbsign embeds it: then
				// sbverify --cert takes the signer's certificate.
				d := signFile(t, in, out, p, SignOptions{Certificate: p.leaf})
				signed := readFile(t, out)
				checkSignedBytes(t, orig, signed, d)
				checkOurSignature(t, signed, d, p, nil)
				sbverifyOK(t, p.leafPEM, out)
				osslVerify(t, p.caPEM, out, d)
				if names := pesignSigners(t, out); len(names) != 1 || names[0] != p.leaf.Subject.CommonName {
					t.Errorf("pesign -S lists %q, want [%s]", names, p.leaf.Subject.CommonName)
				}
			})
		}
	}
}

// TestSignWithChain embeds the CA with the signer's certificate. sbverify
// then wants the CA, not the signer, as --cert: it refuses a chain that
// ends in a self-signed certificate it was not given (sbsign --addcert
// output behaves the same).
func TestSignWithChain(t *testing.T) {
	dir := efiDir(t)
	testenv.MustHave(t, "sbverify", "osslsigncode", "pesign")
	tmp := t.TempDir()
	for _, k := range []keyKind{rsa4096, p256} {
		p := newPKI(t, tmp, "chain-"+string(k), k)
		in := filepath.Join(dir, "arm64/grub.efi")
		out := filepath.Join(tmp, string(k)+".efi")
		d := signFile(t, in, out, p, SignOptions{Certificate: p.leaf, Chain: []*x509.Certificate{p.ca, p.leaf}})
		signed := readFile(t, out)
		checkOurSignature(t, signed, d, p, []*x509.Certificate{p.ca}) // the duplicate leaf is dropped
		sbverifyOK(t, p.caPEM, out)
		osslVerify(t, p.caPEM, out, d)
		if out, ok := run(t, "sbverify", "--cert", p.leafPEM, out); ok {
			t.Logf("sbverify now accepts --cert signer with a self-signed CA in the chain:\n%s", out)
		}
		if names := pesignSigners(t, out); len(names) != 1 {
			t.Errorf("pesign -S lists %q", names)
		}
	}
}

// TestSbsignAgrees signs each image with sbsign and checks that the digest
// sbsign signed is Digest's, that the padded image sbsign wrote is ours,
// and that our signature appended to sbsign's verifies alongside it.
func TestSbsignAgrees(t *testing.T) {
	dir := efiDir(t)
	testenv.MustHave(t, "sbsign", "sbverify", "pesign")
	tmp := t.TempDir()
	a := newPKI(t, tmp, "sbsign", rsa2048)
	b := newPKI(t, tmp, "appended", p256)
	for _, name := range images() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := filepath.Join(dir, name)
			want := mustDigest(t, parseFile(t, in))
			sbs := filepath.Join(t.TempDir(), "sbsign.efi")
			mustRun(t, "sbsign", "--key", a.keyPEM, "--cert", a.leafPEM, "--output", sbs, in)
			img := parseFile(t, sbs)
			sigs, err := img.Signatures()
			if err != nil {
				t.Fatal(err)
			}
			if len(sigs) != 1 {
				t.Fatalf("Signatures found %d in sbsign's output, want 1", len(sigs))
			}
			if !bytes.Equal(sigs[0].Digest, want) || sigs[0].DigestAlgorithm != "SHA-256" {
				t.Fatalf("sbsign signed %s %x; Digest is %x", sigs[0].DigestAlgorithm, sigs[0].Digest, want)
			}
			if sigs[0].Signer == nil || !sigs[0].Signer.Equal(a.leaf) {
				t.Errorf("signer of sbsign's signature: %v", sigs[0].Signer)
			}
			if got := mustDigest(t, img); !bytes.Equal(got, want) {
				t.Errorf("Digest of sbsign's output %x, want %x", got, want)
			}

			ours := filepath.Join(t.TempDir(), "ours.efi")
			d := signFile(t, in, ours, a, SignOptions{Certificate: a.leaf})
			x := readFile(t, sbs)
			y := readFile(t, ours)
			if storedChecksum(t, x) != refChecksum(t, x) {
				t.Errorf("sbsign's CheckSum %#x, the reference computes %#x", storedChecksum(t, x), refChecksum(t, x))
			}
			fx, fy := refFields(t, x), refFields(t, y)
			if fx.certOff != fy.certOff {
				t.Fatalf("sbsign put the certificate table at %#x, Sign at %#x", fx.certOff, fy.certOff)
			}
			x, y = x[:fx.certOff], y[:fy.certOff]
			for _, z := range [][]byte{x, y} {
				clear(z[fx.checksum : fx.checksum+4])
				clear(z[fx.certDir : fx.certDir+8])
			}
			if !bytes.Equal(x, y) {
				t.Error("sbsign's image before the certificate table differs from Sign's")
			}

			// Our signature after sbsign's.
			both := filepath.Join(t.TempDir(), "both.efi")
			if d2 := signFile(t, sbs, both, b, SignOptions{Certificate: b.leaf}); !bytes.Equal(d2, d) {
				t.Errorf("digest of sbsign's output %x, of the image %x", d2, d)
			}
			sbverifyOK(t, a.leafPEM, both)
			sbverifyOK(t, b.leafPEM, both)
			if list := mustRun(t, "sbverify", "--list", both); strings.Count(list, "image signature certificates") != 2 {
				t.Errorf("sbverify --list:\n%s", list)
			}
			if names := pesignSigners(t, both); len(names) != 2 {
				t.Errorf("pesign -S lists %q", names)
			}
		})
	}
}

// TestDoubleSign adds a second signature after a first, shim style, then
// replaces both with one.
func TestDoubleSign(t *testing.T) {
	dir := efiDir(t)
	testenv.MustHave(t, "sbverify", "osslsigncode", "pesign")
	tmp := t.TempDir()
	a := newPKI(t, tmp, "first", rsa2048)
	b := newPKI(t, tmp, "second", p256)
	for _, name := range []string{"arm64/shim.efi", "amd64/grub.efi"} {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join(dir, name)
			orig := readFile(t, in)
			one := filepath.Join(t.TempDir(), "one.efi")
			two := filepath.Join(t.TempDir(), "two.efi")
			d := signFile(t, in, one, a, SignOptions{Certificate: a.leaf})
			if d2 := signFile(t, one, two, b, SignOptions{Certificate: b.leaf}); !bytes.Equal(d, d2) {
				t.Fatalf("the second signature is over %x, the first over %x", d2, d)
			}
			signed := readFile(t, two)
			checkSignedBytes(t, orig, signed, d)
			firstTable := readFile(t, one)
			f1 := refFields(t, firstTable)
			if !bytes.Equal(signed[f1.certOff:f1.certOff+f1.certSize], firstTable[f1.certOff:]) {
				t.Error("the first signature's entry changed when the second was added")
			}
			sigs, err := parseBytes(t, signed).Signatures()
			if err != nil {
				t.Fatal(err)
			}
			if len(sigs) != 2 || !sigs[0].Signer.Equal(a.leaf) || !sigs[1].Signer.Equal(b.leaf) {
				t.Fatalf("Signatures: %d, want the first's then the second's", len(sigs))
			}
			list := mustRun(t, "sbverify", "--list", two)
			if strings.Count(list, "image signature certificates") != 2 || !strings.Contains(list, "CN=first Signer") || !strings.Contains(list, "CN=second Signer") {
				t.Errorf("sbverify --list:\n%s", list)
			}
			sbverifyOK(t, a.leafPEM, two)
			sbverifyOK(t, b.leafPEM, two)
			if names := pesignSigners(t, two); strings.Join(names, ",") != "first Signer,second Signer" {
				t.Errorf("pesign -S lists %q", names)
			}
			if out, ok := run(t, "osslsigncode", "verify", "-CAfile", a.caPEM, "-in", two); ok || !strings.Contains(out, "Corrupted attribute certificate table") {
				// osslsigncode nests further signatures in the first entry
				// and calls a table of two entries corrupt.
				t.Logf("osslsigncode on two appended entries (ok=%v):\n%s", ok, out)
			}

			// Replace: only the new signature remains.
			re := filepath.Join(t.TempDir(), "replaced.efi")
			signFile(t, two, re, b, SignOptions{Certificate: b.leaf, Replace: true})
			replaced := readFile(t, re)
			checkSignedBytes(t, orig, replaced, d)
			if sigs, err := parseBytes(t, replaced).Signatures(); err != nil || len(sigs) != 1 || !sigs[0].Signer.Equal(b.leaf) {
				t.Errorf("after Replace: %d signatures, %v", len(sigs), err)
			}
			if out, ok := run(t, "sbverify", "--cert", a.leafPEM, re); ok {
				t.Errorf("sbverify --cert first still verifies after Replace:\n%s", out)
			}
			sbverifyOK(t, b.leafPEM, re)
			osslVerify(t, b.caPEM, re, d)
			if names := pesignSigners(t, re); len(names) != 1 || names[0] != "second Signer" {
				t.Errorf("pesign -S lists %q", names)
			}
		})
	}
}

// TestNestedSignature reads a signature that osslsigncode nests inside
// ours (the Windows way of signing twice).
func TestNestedSignature(t *testing.T) {
	dir := efiDir(t)
	testenv.MustHave(t, "osslsigncode")
	tmp := t.TempDir()
	a := newPKI(t, tmp, "outer", rsa2048)
	b := newPKI(t, tmp, "nested", p256)
	one := filepath.Join(tmp, "one.efi")
	d := signFile(t, filepath.Join(dir, "arm64/grub.efi"), one, a, SignOptions{Certificate: a.leaf})
	nested := filepath.Join(tmp, "nested.efi")
	mustRun(t, "osslsigncode", "sign", "-nest", "-h", "sha256", "-certs", b.leafPEM, "-key", b.keyPEM, "-in", one, "-out", nested)
	sigs, err := parseFile(t, nested).Signatures()
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 2 || sigs[0].Nested || !sigs[1].Nested || !sigs[0].Signer.Equal(a.leaf) || !sigs[1].Signer.Equal(b.leaf) {
		t.Fatalf("Signatures: %+v", sigs)
	}
	for _, s := range sigs {
		if !bytes.Equal(s.Digest, d) {
			t.Errorf("%v signed %x, want %x", s.Signer.Subject, s.Digest, d)
		}
	}
	cas := readFile(t, a.caPEM)
	more := readFile(t, b.caPEM)
	both := filepath.Join(tmp, "cas.pem")
	if err := os.WriteFile(both, append(cas, more...), 0o600); err != nil {
		t.Fatal(err)
	}
	out := osslVerify(t, both, nested, d)
	if n := strings.Count(out, "Signature verification: ok"); n != 2 {
		t.Errorf("osslsigncode verified %d signatures, want 2:\n%s", n, out)
	}
}

// TestShimOddLength covers Debian's arm64 shim: its length is not a
// multiple of 8 and data follows its last section. The digest is that of
// the image padded to 8 bytes (what sbsign signs), not of the bare file.
func TestShimOddLength(t *testing.T) {
	dir := efiDir(t)
	in := filepath.Join(dir, "arm64/shim.efi")
	orig := readFile(t, in)
	if len(orig)%8 == 0 {
		t.Fatalf("arm64 shim is %d bytes, a multiple of 8: the test no longer covers padding", len(orig))
	}
	f := refFields(t, orig)
	end := f.sizeOfHeaders
	for _, s := range f.sections {
		end += s[1] - s[0]
	}
	if end >= len(orig) {
		t.Fatalf("no data after the sections (they end at %#x, the file at %#x)", end, len(orig))
	}
	t.Logf("arm64 shim: %d bytes, %d of them after the last section", len(orig), len(orig)-end)
	img := parseFile(t, in)
	got := mustDigest(t, img)
	if want := refDigest(t, orig, true); !bytes.Equal(got, want) {
		t.Errorf("Digest %x, padded reference %x", got, want)
	}
	if bare := refDigest(t, orig, false); bytes.Equal(got, bare) {
		t.Error("the padded and bare digests agree: padding is not covered")
	}
	out := filepath.Join(t.TempDir(), "shim.efi")
	d := signFile(t, in, out, newPKI(t, t.TempDir(), "shim", rsa2048), SignOptions{})
	signed := readFile(t, out)
	checkSignedBytes(t, orig, signed, d)
	if !img.HasSection(".sbat") || img.HasSection(".nope") || img.Machine() != MachineARM64 {
		t.Errorf("HasSection(.sbat) %v, HasSection(.nope) %v, Machine %v", img.HasSection(".sbat"), img.HasSection(".nope"), img.Machine())
	}
}
