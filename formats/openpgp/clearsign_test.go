package openpgp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	gopenpgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"

	"github.com/signet-project/signet/internal/testenv"
)

// clearSignCases are the inputs ClearSign is tested with.
var clearSignCases = []struct{ name, in string }{
	{"plain", "hello, world\n"},
	{"no final newline", "hello\nworld"},
	{"CRLF", "one\r\ntwo\r\n\r\nthree\r\n"},
	{"CRLF no final newline", "one\r\ntwo"},
	{"mixed line endings", "lf\ncrlf\r\nlf\n"},
	{"empty", ""},
	{"only a newline", "\n"},
	{"only CRLFs", "\r\n\r\n"},
	{"blank lines", "\n\n\na\n\n\n"},
	{"whitespace-only lines", "a\n   \n\t\t\n \t \r\nb\n \t"},
	{"trailing whitespace", "spaces  \ntab\t\nmixed \t \r\nlast   "},
	{"inner and leading whitespace", "  indented\n\tx \t y\n a  b \n"},
	{"dashes", "-----BEGIN PGP SIGNATURE-----\n- x\n-\n--\n - not escaped\n-----END PGP SIGNATURE-----"},
	{"From lines", "From me\nFrom\nFrom \nFrom  x\nFromage\n>From x\nfrom x\nFrom"},
	{"header-like", "Hash: SHA1\n\nVersion: x\n"},
	{"UTF-8", "héllo wörld ✓ 🎉\nnon-breaking space at the end\u00a0\n"},
	{"control characters", "bell\a form feed\f vt\v esc\x1b del\x7f\n"},
	// Lines of MaxClearSignLine bytes, after trailing blanks are removed
	// and with "- " added, and 32 KiB reads ending inside them.
	{"longest lines", longLine("", MaxClearSignLine) + " \t \n" + longLine("-", MaxClearSignLine-2) +
		"\r\n" + longLine("From ", MaxClearSignLine-2) + "\n" + longLine("\t", MaxClearSignLine)},
	{"long blank line", "a\n" + strings.Repeat(" \t", 60_000) + "\r\nx" + strings.Repeat(" ", 40_000)},
}

// longLine returns prefix followed by spaces, tabs and letters, n bytes in
// all, ending in a letter.
func longLine(prefix string, n int) string {
	s := prefix + strings.Repeat("abc def\t", n/8+1)
	return s[:n-1] + "z"
}

// clearSignedText is the text ClearSign must sign for in: the final line
// ending dropped, lines without trailing spaces and tabs, joined by CRLF.
func clearSignedText(in string) string {
	lines := strings.Split(strings.TrimSuffix(in, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(strings.TrimSuffix(l, "\r"), " \t")
	}
	return strings.Join(lines, "\r\n")
}

// clearSignedBody is the dash-escaped text ClearSign must write for in,
// up to and including the line break before the signature.
func clearSignedBody(in string) string {
	var b strings.Builder
	for _, l := range strings.Split(clearSignedText(in), "\r\n") {
		if strings.HasPrefix(l, "-") || strings.HasPrefix(l, "From ") {
			b.WriteString("- ")
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// clearSignKeys are the keys the cleartext tests sign with: RSA-2048,
// P-256 and Ed25519.
func clearSignKeys(t *testing.T) []testSigner {
	var keys []testSigner
	for _, s := range testSigners() {
		if s.name == "rsa2048" || s.name == "p256" || s.name == "ed25519" {
			keys = append(keys, s)
		}
	}
	if len(keys) != 3 {
		t.Fatalf("found %d of the 3 test keys", len(keys))
	}
	return keys
}

// verifierKeys are the keys whose signatures the external verifiers (gpg,
// sq, skopeo) check: clearSignKeys, or only Ed25519 under -short, where
// starting the verifiers is most of the time.
func verifierKeys(t *testing.T) []testSigner {
	keys := clearSignKeys(t)
	if testing.Short() {
		for _, k := range keys {
			if k.name == "ed25519" {
				return []testSigner{k}
			}
		}
	}
	return keys
}

func clearSign(t *testing.T, k *Key, r io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := k.ClearSign(&buf, r, testSigTime); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestClearSignFormat checks the exact message ClearSign writes, that reads
// of any size give the same message, and that go-crypto's cleartext parser
// finds the expected signed text and a good signature.
func TestClearSignFormat(t *testing.T) {
	for _, tc := range clearSignKeys(t) {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKey(tc.signer, testCreated)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := k.Certificate([]string{testUID}, testSigTime)
			if err != nil {
				t.Fatal(err)
			}
			keyring, err := gopenpgp.ReadKeyRing(bytes.NewReader(cert))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range clearSignCases {
				msg := clearSign(t, k, strings.NewReader(c.in))
				header := fmt.Sprintf("-----BEGIN PGP SIGNED MESSAGE-----\nHash: %s\n\n", hashNames[k.Hash()])
				want := header + clearSignedBody(c.in) + "-----BEGIN PGP SIGNATURE-----\n\n"
				if !bytes.HasPrefix(msg, []byte(want)) || !bytes.HasSuffix(msg, []byte("\n-----END PGP SIGNATURE-----\n")) {
					t.Errorf("%s: message\n%.300q\nwant it to start\n%.300q", c.name, msg, want)
				}
				b, rest := clearsign.Decode(msg)
				if b == nil || len(rest) != 0 {
					t.Fatalf("%s: go-crypto cannot parse the message (rest %q):\n%s", c.name, rest, msg)
				}
				if string(b.Bytes) != clearSignedText(c.in) {
					t.Errorf("%s: go-crypto finds signed text %.100q, want %.100q", c.name, b.Bytes, clearSignedText(c.in))
				}
				if _, err := b.VerifySignature(keyring, nil); err != nil {
					t.Errorf("%s: go-crypto: %v", c.name, err)
				}
				// Reads of a byte, or of odd sizes, split CRLFs, UTF-8
				// sequences and "From " anywhere. Ed25519 signatures are
				// deterministic, so the whole message must be the same.
				if tc.name == "ed25519" {
					for _, r := range []io.Reader{iotest.OneByteReader(strings.NewReader(c.in)), iotest.HalfReader(strings.NewReader(c.in))} {
						if again := clearSign(t, k, r); !bytes.Equal(again, msg) {
							t.Errorf("%s: message read in small pieces differs:\n%.300q\nwant\n%.300q", c.name, again, msg)
						}
					}
					if !strings.HasSuffix(c.in, "\n") {
						if again := clearSign(t, k, strings.NewReader(c.in+"\n")); !bytes.Equal(again, msg) {
							t.Errorf("%s: a final newline changes the message", c.name)
						}
					}
				}
			}
		})
	}
}

func TestClearSignRefuses(t *testing.T) {
	k, err := NewKey(testSigners()[4].signer, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, in, want string
	}{
		{"NUL", "a\nb\nc\x00d\n", "line 3: NUL byte"},
		{"invalid UTF-8", "a\n\xff\n", "line 2: invalid UTF-8"},
		{"Latin-1", "ok\nok\nna\xefve\n", "line 3: invalid UTF-8"},
		{"surrogate", "\xed\xa0\x80\n", "line 1: invalid UTF-8"},
		{"overlong", "\xc0\xaf\n", "line 1: invalid UTF-8"},
		{"cut-off sequence", "a\n\xe2\x9c\n", "line 2: invalid UTF-8 (incomplete"},
		{"sequence cut off at the end", "a\n\xe2\x9c", "line 2: invalid UTF-8 (sequence cut off"},
		{"bare CR", "a\r\nb\rc\n", "line 2: carriage return not followed"},
		{"CR CR LF", "a\r\r\n", "line 1: carriage return not followed"},
		{"CR blank LF", "a\r \n", "line 1: carriage return not followed"},
		{"CR at the end", "a\nb\r", "line 2: carriage return at the end"},
		{"long line", "x\n" + longLine("", MaxClearSignLine+1) + "\n", "line 2: line longer than 19998 bytes"},
		{"long dash line", "x\n" + longLine("-", MaxClearSignLine-1), "line 2: line longer than 19998 bytes"},
		{"long From line", longLine("From ", MaxClearSignLine-1) + "  \n", "line 1: line longer than 19998 bytes"},
		{"long blank run", "x\n" + strings.Repeat(" ", MaxClearSignLine) + "x\n", "line 2: line longer than 19998 bytes"},
		{"very long blank run", "x\n" + strings.Repeat(" ", 3*MaxClearSignLine) + "x\n", "line 2: line longer than 19998 bytes"},
	} {
		for _, r := range []io.Reader{strings.NewReader(c.in), iotest.OneByteReader(strings.NewReader(c.in))} {
			err := k.ClearSign(io.Discard, r, testSigTime)
			if !errors.Is(err, ErrNotCleartext) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %v, want ErrNotCleartext naming %q", c.name, err, c.want)
			}
		}
	}
	if t.Failed() {
		return
	}
	err = k.ClearSign(io.Discard, strings.NewReader("a\n\xff"), testSigTime)
	t.Logf("example: %v", err)

	var buf bytes.Buffer
	err = k.ClearSign(&buf, strings.NewReader("x"), testCreated.Add(-1))
	if err == nil || !strings.Contains(err.Error(), "before the key creation") || buf.Len() != 0 {
		t.Errorf("signature time before key creation: error %v, %d bytes written", err, buf.Len())
	}
	err = k.ClearSign(io.Discard, io.MultiReader(strings.NewReader("x\n"), errReader{}), testSigTime)
	if err == nil || !strings.Contains(err.Error(), "reading data: boom") || errors.Is(err, ErrNotCleartext) {
		t.Errorf("read error: error %v", err)
	}
	err = k.ClearSign(failWriter{}, strings.NewReader("x\n"), testSigTime)
	if err == nil || !strings.Contains(err.Error(), "writing message: full") {
		t.Errorf("write error: error %v", err)
	}
	bad, _ := NewKey(badSigner{testSigners()[4].signer}, testCreated)
	if err := bad.ClearSign(io.Discard, strings.NewReader("x\n"), testSigTime); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("bad signer: error %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("full") }

// sq runs sq and returns its stdout and an error with its output.
func sq(args ...string) (string, error) {
	cmd := exec.Command("sq", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("sq %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// tamperClearSigned changes one character of the signed text of msg (or,
// if it has no letter, adds one).
func tamperClearSigned(msg []byte) []byte {
	start := bytes.Index(msg, []byte("\n\n")) + 2
	end := bytes.Index(msg, []byte("\n-----BEGIN PGP SIGNATURE-----"))
	out := bytes.Clone(msg)
	for i := start; i < end; i++ {
		if c := out[i]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			out[i] ^= 0x01 // another letter
			return out
		}
	}
	return append(append(append([]byte(nil), msg[:start]...), 'x'), msg[start:]...)
}

// verifierSetup imports k's certificate into a fresh GNUPGHOME and writes it
// to cert.pgp there for sq.
func verifierSetup(t *testing.T, k *Key) (home, certPath string) {
	home = gpgHome(t)
	cert, err := k.Certificate([]string{testUID}, testSigTime)
	if err != nil {
		t.Fatal(err)
	}
	certPath = writeFile(t, home, "cert.pgp", cert)
	gpg(t, home, "--import", certPath)
	return home, certPath
}

// TestClearSignWithGPGAndSQ has gpg and sq verify cleartext signed messages
// and give back the text, and refuse them after a one-character change.
func TestClearSignWithGPGAndSQ(t *testing.T) {
	testenv.MustHave(t, "gpg")
	testenv.MustHave(t, "sq")
	for _, tc := range verifierKeys(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := NewKey(tc.signer, testCreated)
			if err != nil {
				t.Fatal(err)
			}
			home, certPath := verifierSetup(t, k)
			validsig := fmt.Sprintf("[GNUPG:] VALIDSIG %s %s %d 0 4 0 %s %d 01 %s", k.FingerprintHex(),
				testSigTime.Format("2006-01-02"), testSigTime.Unix(), tc.algo, hashIDs[k.Hash()], k.FingerprintHex())
			for i, c := range clearSignCases {
				msg := clearSign(t, k, strings.NewReader(c.in))
				msgPath := writeFile(t, home, fmt.Sprintf("msg%d.asc", i), msg)
				// Verifiers give back the signed text with LF line
				// endings and a final LF.
				want := strings.ReplaceAll(clearSignedText(c.in), "\r\n", "\n") + "\n"

				recPath := filepath.Join(home, fmt.Sprintf("msg%d.txt", i))
				status, err := gpgRun(home, "--status-fd", "1", "--output", recPath, "--verify", msgPath)
				if err != nil || !strings.Contains(status, validsig) {
					t.Errorf("%s: gpg --verify (err %v), want %q:\n%s\nmessage:\n%.500s", c.name, err, validsig, status, msg)
				} else if rec, err := os.ReadFile(recPath); err != nil || string(rec) != want {
					t.Errorf("%s: gpg --output gives %.200q (%v), want %.200q", c.name, rec, err, want)
				}
				if out, err := sq("verify", "--signer-cert", certPath, msgPath); err != nil {
					t.Errorf("%s: %v\nmessage:\n%.500s", c.name, err, msg)
				} else if out != want {
					t.Errorf("%s: sq verify gives %.200q, want %.200q", c.name, out, want)
				}

				bad := writeFile(t, home, fmt.Sprintf("bad%d.asc", i), tamperClearSigned(msg))
				if status, err := gpgRun(home, "--status-fd", "1", "--output", "-", "--verify", bad); err == nil || !strings.Contains(status, "BADSIG") {
					t.Errorf("%s: gpg accepted a changed message (err %v):\n%s", c.name, err, status)
				}
				if out, err := sq("verify", "--signer-cert", certPath, bad); err == nil {
					t.Errorf("%s: sq accepted a changed message:\n%s", c.name, out)
				} else if i == 0 {
					t.Logf("sq on a changed message: %v", err)
				}
			}
		})
	}
}

// TestSignDetachedArmoredWithGPGAndSQ checks that armored detached
// signatures (SignDetachedArmored, the same as Armor on SignDetached's
// packet) verify with gpg --verify and sq verify --detached, and fail on
// changed data.
func TestSignDetachedArmoredWithGPGAndSQ(t *testing.T) {
	testenv.MustHave(t, "gpg")
	testenv.MustHave(t, "sq")
	data := make([]byte, 300_000)
	rand.Read(data)
	for _, tc := range verifierKeys(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := NewKey(tc.signer, testCreated)
			if err != nil {
				t.Fatal(err)
			}
			home, certPath := verifierSetup(t, k)
			for _, c := range []struct {
				name  string
				data  []byte
				text  bool
				class string
			}{
				{"binary", data, false, "00"},
				{"text", []byte("line one  \r\nline two\t\n- three\n"), true, "01"}, // trailing blanks are signed
			} {
				asc, err := k.SignDetachedArmored(bytes.NewReader(c.data), c.text, testSigTime)
				if err != nil {
					t.Fatal(err)
				}
				sig, _ := k.SignDetached(bytes.NewReader(c.data), c.text, testSigTime)
				if want, _ := Armor(sig, "PGP SIGNATURE"); tc.name == "ed25519" && !bytes.Equal(asc, want) {
					t.Errorf("%s: SignDetachedArmored differs from Armor(SignDetached)", c.name)
				}
				if !bytes.HasPrefix(asc, []byte("-----BEGIN PGP SIGNATURE-----\n\n")) || !bytes.HasSuffix(asc, []byte("\n-----END PGP SIGNATURE-----\n")) {
					t.Errorf("%s: armor:\n%s", c.name, asc)
				}
				sigPath := writeFile(t, home, c.name+".asc", asc)
				dataPath := writeFile(t, home, c.name+".data", c.data)
				badPath := writeFile(t, home, c.name+".bad", append([]byte{c.data[0] ^ 1}, c.data[1:]...))

				validsig := fmt.Sprintf("[GNUPG:] VALIDSIG %s %s %d 0 4 0 %s %d %s %s", k.FingerprintHex(),
					testSigTime.Format("2006-01-02"), testSigTime.Unix(), tc.algo, hashIDs[k.Hash()], c.class, k.FingerprintHex())
				if status, err := gpgRun(home, "--status-fd", "1", "--verify", sigPath, dataPath); err != nil || !strings.Contains(status, validsig) {
					t.Errorf("%s: gpg --verify (err %v), want %q:\n%s", c.name, err, validsig, status)
				}
				if _, err := sq("verify", "--signer-cert", certPath, "--detached", sigPath, dataPath); err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
				if status, err := gpgRun(home, "--status-fd", "1", "--verify", sigPath, badPath); err == nil || !strings.Contains(status, "BADSIG") {
					t.Errorf("%s: gpg accepted changed data (err %v):\n%s", c.name, err, status)
				}
				if out, err := sq("verify", "--signer-cert", certPath, "--detached", sigPath, badPath); err == nil {
					t.Errorf("%s: sq accepted changed data:\n%s", c.name, out)
				}
			}
		})
	}
}
