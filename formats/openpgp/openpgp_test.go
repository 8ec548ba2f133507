package openpgp

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

var (
	testCreated = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	testSigTime = testCreated.Add(time.Hour)
	testUID     = "Signet Test <signet-test@example.org>"
)

type testSigner struct {
	name   string
	signer crypto.Signer
	algo   string // gpg's algorithm number in --with-colons
	rpm    bool   // rpm 4.18 accepts the algorithm
}

// testSigners are software keys of every supported kind, made once.
var testSigners = sync.OnceValue(func() []testSigner {
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	rsa4096, err := rsa.GenerateKey(rand.Reader, 4096)
	must(err)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	must(err)
	// rpm 4.18 rejects ECDSA keys and signatures, so ECDSA is not
	// imported into rpm.
	return []testSigner{
		{"rsa2048", rsa2048, "1", true},
		{"rsa4096", rsa4096, "1", true},
		{"p256", p256, "19", false},
		{"p384", p384, "19", false},
		{"ed25519", ed, "22", true},
	}
})

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// gpgHome makes a throwaway GNUPGHOME and stops its agent at the end.
func gpgHome(t *testing.T) string {
	t.Helper()
	testenv.MustHave(t, "gpg")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.ShortGPGAgent(t, dir)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", dir, "--kill", "all").Run() })
	return dir
}

// gpg runs gpg in home and returns its stdout; it fails the test on a
// non-zero exit.
func gpg(t *testing.T, home string, args ...string) string {
	t.Helper()
	out, err := gpgRun(home, args...)
	if err != nil {
		t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func gpgRun(home string, args ...string) (string, error) {
	cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--no-tty"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s%s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// colons returns the --with-colons records of the given type.
func colons(out, typ string) [][]string {
	var recs [][]string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, ":"); f[0] == typ {
			recs = append(recs, f)
		}
	}
	return recs
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testText has LF and CRLF line endings, trailing blanks, a CR inside a
// line, CRs before a line end and a last line without a line ending.
const testText = "first line\nsecond line  \r\n\tthird\rline\t\n\n-- dash line\r\r\nlast line, no newline\r"

func TestCertificateAndSignaturesWithGPG(t *testing.T) {
	testenv.MustHave(t, "gpg")
	binData := make([]byte, 300_000)
	rand.Read(binData)
	for _, tc := range testSigners() {
		t.Run(tc.name, func(t *testing.T) {
			home := gpgHome(t)
			k, err := NewKey(tc.signer, testCreated)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := k.ArmoredCertificate([]string{testUID, "Second <second@example.org>"}, testSigTime)
			if err != nil {
				t.Fatal(err)
			}
			gpg(t, home, "--import", writeFile(t, home, "key.asc", cert))

			out := gpg(t, home, "--with-colons", "--fingerprint", "--check-sigs")
			pubs, fprs := colons(out, "pub"), colons(out, "fpr")
			if len(pubs) != 1 || len(fprs) != 1 {
				t.Fatalf("gpg lists %d keys, want 1:\n%s", len(pubs), out)
			}
			if got := fprs[0][9]; got != k.FingerprintHex() {
				t.Errorf("gpg fingerprint %s, want %s", got, k.FingerprintHex())
			}
			if got, want := pubs[0][4], fmt.Sprintf("%016X", k.KeyID()); got != want {
				t.Errorf("gpg key id %s, want %s", got, want)
			}
			if got, want := pubs[0][5], fmt.Sprint(testCreated.Unix()); got != want {
				t.Errorf("gpg creation time %s, want %s", got, want)
			}
			if got := pubs[0][3]; got != tc.algo {
				t.Errorf("gpg algorithm %s, want %s", got, tc.algo)
			}
			if got := pubs[0][11]; !strings.Contains(got, "s") || !strings.Contains(got, "c") {
				t.Errorf("gpg capabilities %q, want sign and certify", got)
			}
			if uids := colons(out, "uid"); len(uids) != 2 || uids[0][9] != testUID {
				t.Errorf("gpg user ids %v, want %q first of 2", uids, testUID)
			}
			sigs := colons(out, "sig")
			if len(sigs) != 2 {
				t.Fatalf("gpg lists %d self-signatures, want 2:\n%s", len(sigs), out)
			}
			for _, s := range sigs {
				if s[1] != "!" || s[10] != "13x" {
					t.Errorf("self-signature check %q class %q, want \"!\" and \"13x\"", s[1], s[10])
				}
			}

			binPath := writeFile(t, home, "data.bin", binData)
			textPath := writeFile(t, home, "data.txt", []byte(testText))
			crlfPath := writeFile(t, home, "data-crlf.txt", []byte(strings.ReplaceAll(strings.ReplaceAll(testText, "\r\n", "\n"), "\n", "\r\n")))
			for _, c := range []struct {
				name, data, other string
				text              bool
				class             string
			}{
				{"binary", binPath, "", false, "00"},
				{"text", textPath, crlfPath, true, "01"},
			} {
				f, err := os.Open(c.data)
				if err != nil {
					t.Fatal(err)
				}
				sig, err := k.SignDetached(f, c.text, testSigTime)
				f.Close()
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				sigPath := writeFile(t, home, c.name+".sig", sig)
				status := gpg(t, home, "--status-fd", "1", "--verify", sigPath, c.data)
				want := fmt.Sprintf("[GNUPG:] VALIDSIG %s %s %d 0 4 0 %s %d %s %s", k.FingerprintHex(),
					testSigTime.Format("2006-01-02"), testSigTime.Unix(), tc.algo, hashIDs[k.Hash()], c.class, k.FingerprintHex())
				if !strings.Contains(status, want) {
					t.Errorf("%s: gpg --verify status lacks %q:\n%s", c.name, want, status)
				}
				if c.other != "" { // the same text with other line endings
					gpg(t, home, "--verify", sigPath, c.other)
				}
				// The signature must not verify other data.
				if out, err := gpgRun(home, "--status-fd", "1", "--verify", sigPath, writeFile(t, home, "tampered", []byte("tampered"))); err == nil || !strings.Contains(out, "BADSIG") {
					t.Errorf("%s: gpg accepted the signature over other data (err %v):\n%s", c.name, err, out)
				}
			}
		})
	}
}

func TestCertificateWithRPM(t *testing.T) {
	testenv.MustHave(t, "rpmkeys")
	testenv.MustHave(t, "rpm")
	for _, tc := range testSigners() {
		if !tc.rpm {
			continue // rpm 4.18 refuses ECDSA keys
		}
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKey(tc.signer, testCreated)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := k.ArmoredCertificate([]string{testUID}, testSigTime)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			db := filepath.Join(dir, "db")
			asc := writeFile(t, dir, "key.asc", cert)
			if out, err := exec.Command("rpmkeys", "--dbpath", db, "--import", asc).CombinedOutput(); err != nil {
				t.Fatalf("rpmkeys --import: %v\n%s", err, out)
			}
			out, err := exec.Command("rpm", "--dbpath", db, "-q", "gpg-pubkey").CombinedOutput()
			if err != nil {
				t.Fatalf("rpm -q gpg-pubkey: %v\n%s", err, out)
			}
			want := fmt.Sprintf("gpg-pubkey-%08x-%08x", uint32(k.KeyID()), testCreated.Unix())
			if strings.TrimSpace(string(out)) != want {
				t.Errorf("rpm -q gpg-pubkey = %q, want %q", out, want)
			}
		})
	}
}

// badSigner returns a fixed signature whatever it is asked to sign.
type badSigner struct{ crypto.Signer }

func (b badSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return make([]byte, 64), nil
}

// pubSigner is a signer with an arbitrary public key that cannot sign.
type pubSigner struct{ pub crypto.PublicKey }

func (p pubSigner) Public() crypto.PublicKey { return p.pub }
func (p pubSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("cannot sign")
}

func TestNewKeyRefuses(t *testing.T) {
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	x25519, _ := p521.PublicKey.ECDH()                                          // any non-signing key type
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537} // 1024 bits
	for _, c := range []struct {
		name    string
		signer  crypto.Signer
		created time.Time
		want    string
		unsup   bool
	}{
		{"P-521", p521, testCreated, "P-521", true},
		{"ECDH key", pubSigner{x25519}, testCreated, "*ecdh.PublicKey", true},
		{"small RSA", pubSigner{small}, testCreated, "bits", true},
		{"zero time", testSigners()[4].signer, time.Time{}, "creation time", false},
		{"before 1970", testSigners()[4].signer, time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), "creation time", false},
		{"after 2106", testSigners()[4].signer, time.Date(2107, 1, 1, 0, 0, 0, 0, time.UTC), "creation time", false},
		{"nil signer", nil, testCreated, "nil signer", false},
	} {
		_, err := NewKey(c.signer, c.created)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrUnsupportedAlgorithm) != c.unsup {
			t.Errorf("%s: NewKey error %v, want one naming %q (unsupported: %v)", c.name, err, c.want, c.unsup)
		}
	}
}

func TestKeyIdentity(t *testing.T) {
	s := testSigners()[4].signer
	a, _ := NewKey(s, testCreated.Add(999*time.Millisecond))
	b, _ := NewKey(s, testCreated)
	c, _ := NewKey(s, testCreated.Add(time.Second))
	if a.FingerprintHex() != b.FingerprintHex() {
		t.Error("sub-second creation time changed the fingerprint")
	}
	if b.FingerprintHex() == c.FingerprintHex() {
		t.Error("creation time does not change the fingerprint")
	}
	if len(b.Fingerprint()) != 20 || len(b.FingerprintHex()) != 40 || strings.ToUpper(b.FingerprintHex()) != b.FingerprintHex() {
		t.Errorf("fingerprint %q", b.FingerprintHex())
	}
	if got := fmt.Sprintf("%016X", b.KeyID()); !strings.HasSuffix(b.FingerprintHex(), got) {
		t.Errorf("key id %s is not the end of fingerprint %s", got, b.FingerprintHex())
	}
	if !b.Created().Equal(testCreated) {
		t.Errorf("Created %v", b.Created())
	}
}

func TestSignRefuses(t *testing.T) {
	ed, _ := NewKey(testSigners()[4].signer, testCreated)
	p384, _ := NewKey(testSigners()[3].signer, testCreated)
	bad, _ := NewKey(badSigner{testSigners()[4].signer}, testCreated)
	for _, c := range []struct {
		name string
		err  func() error
		want string
	}{
		{"cert type", func() error {
			_, err := ed.SignReader(strings.NewReader("x"), 0x13, crypto.SHA256, testSigTime)
			return err
		}, "0x13"},
		{"SHA-1", func() error { _, err := ed.SignReader(strings.NewReader("x"), 0, crypto.SHA1, testSigTime); return err }, "SHA-1"},
		{"short hash for P-384", func() error {
			_, err := p384.SignReader(strings.NewReader("x"), 0, crypto.SHA256, testSigTime)
			return err
		}, "shorter"},
		{"before creation", func() error {
			_, err := ed.SignDetached(strings.NewReader("x"), false, testCreated.Add(-time.Second))
			return err
		}, "before the key creation"},
		{"no user id", func() error { _, err := ed.Certificate(nil, testSigTime); return err }, "no user id"},
		{"bad user id", func() error { _, err := ed.Certificate([]string{"\xff"}, testSigTime); return err }, `"\xff"`},
		{"bad signer", func() error { _, err := bad.SignDetached(strings.NewReader("x"), false, testSigTime); return err }, "does not verify"},
		{"read error", func() error {
			_, err := ed.SignDetached(io.MultiReader(strings.NewReader("x"), errReader{}), false, testSigTime)
			return err
		}, "reading data: boom"},
	} {
		if err := c.err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestCRLFWriter(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "",
		"a\nb":                                  "a\r\nb",
		"a\r\nb\n":                              "a\r\nb\r\n",
		"a\rb\n\n":                              "a\rb\r\n\r\n",
		"\n\r\n\r\r\n":                          "\r\n\r\n\r\n",
		"a\r\r\nb\r":                            "a\r\nb",
		"\r\r\rx":                               "\r\r\rx",
		"no line end  ":                         "no line end  ",
		strings.Repeat("\r", 100_000) + "x\r\n": strings.Repeat("\r", 100_000) + "x\r\n",
	} {
		// Once in one write, once a byte at a time so that CR and LF
		// fall in separate writes.
		var one, bytewise bytes.Buffer
		(&crlfWriter{w: &one}).Write([]byte(in))
		w := &crlfWriter{w: &bytewise}
		for i := range len(in) {
			w.Write([]byte{in[i]})
		}
		if one.String() != want || bytewise.String() != want {
			t.Errorf("canonical %.20q = %.20q / %.20q, want %.20q", in, one.String(), bytewise.String(), want)
		}
	}
}
