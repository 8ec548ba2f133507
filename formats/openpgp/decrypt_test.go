package openpgp

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gopenpgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signet-project/signet/internal/testenv"
)

// countingDecrypter is a software RSA key that counts its decryptions and
// fails any that is not asked for PKCS #1 v1.5, as a token's would.
type countingDecrypter struct {
	priv  *rsa.PrivateKey
	calls int
}

func (c *countingDecrypter) Public() crypto.PublicKey { return &c.priv.PublicKey }

func (c *countingDecrypter) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	c.calls++
	//lint:ignore SA1019 what the code under test must ask for
	if _, ok := opts.(*rsa.PKCS1v15DecryptOptions); !ok {
		return nil, fmt.Errorf("decrypter called with options %T, want *rsa.PKCS1v15DecryptOptions", opts)
	}
	return c.priv.Decrypt(rand, msg, opts)
}

// decryptKeys returns the RSA-2048 test key and, as another recipient, the
// RSA-4096 one.
func decryptKeys(t *testing.T) (k, other *Key, priv *rsa.PrivateKey) {
	t.Helper()
	priv = testSigners()[0].signer.(*rsa.PrivateKey)
	k, err := NewKey(priv, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	other, err = NewKey(testSigners()[1].signer, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	return k, other, priv
}

// decrypt runs Decrypt with a fresh counting decrypter and returns the
// plaintext, the error and the number of decryptions.
func decrypt(k *Key, priv *rsa.PrivateKey, msg []byte) ([]byte, int, error) {
	dec := &countingDecrypter{priv: priv}
	var out bytes.Buffer
	err := Decrypt(&out, bytes.NewReader(msg), k, dec)
	return out.Bytes(), dec.calls, err
}

// testPlaintext is compressible text followed by random bytes.
func testPlaintext() []byte {
	data := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 2000))
	random := make([]byte, 50_000)
	rand.Read(random)
	return append(data, random...)
}

// TestDecryptGPGMessages has gpg encrypt to the RSA certificate, as
// `gpg --encrypt -r` does for a Sigul user, and checks that Decrypt gives
// the plaintext back with a single decryption, whatever the compression,
// armor, recipients or hidden key ids; and that a changed byte, a message to
// another key and garbage give ErrDecrypt.
func TestDecryptGPGMessages(t *testing.T) {
	testenv.MustHave(t, "gpg")
	k, other, priv := decryptKeys(t)
	home := gpgHome(t)
	for i, key := range []*Key{k, other} {
		cert, err := key.ArmoredCertificate([]string{fmt.Sprintf("Recipient %d <r%d@example.org>", i, i)}, testSigTime)
		if err != nil {
			t.Fatal(err)
		}
		gpg(t, home, "--import", writeFile(t, home, fmt.Sprintf("cert%d.asc", i), cert))
	}
	out := gpg(t, home, "--with-colons", "--list-keys", k.FingerprintHex())
	if pubs := colons(out, "pub"); len(pubs) != 1 || !strings.Contains(pubs[0][11], "e") || !strings.Contains(pubs[0][11], "E") {
		t.Fatalf("gpg does not see the RSA certificate as able to encrypt:\n%s", out)
	}

	plain := testPlaintext()
	plainPath := writeFile(t, home, "plain", plain)
	emptyPath := writeFile(t, home, "empty", nil)
	encrypt := func(name, in string, args ...string) []byte {
		t.Helper()
		outPath := filepath.Join(home, name+".gpg")
		gpg(t, home, append(append([]string{"--trust-model", "always", "--output", outPath}, args...), "--encrypt", in)...)
		msg, err := os.ReadFile(outPath)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	to := []string{"-r", k.FingerprintHex()}
	// The certificate asks for AES (gpg would otherwise pick 3DES), as gpg
	// reads it.
	for i := range 2 {
		pk := gpg(t, home, "--list-packets", filepath.Join(home, fmt.Sprintf("cert%d.asc", i)))
		if !strings.Contains(pk, "pref-sym-algos: 9 8 7") || !strings.Contains(pk, "features: 01") {
			t.Errorf("certificate %d: no AES preferences or MDC feature in\n%s", i, pk)
		}
	}
	toBoth := []string{"-r", other.FingerprintHex(), "-r", k.FingerprintHex()}
	msgs := map[string][]byte{}
	for _, c := range []struct {
		name string
		in   string
		args []string
	}{
		{"default compression", plainPath, to},
		{"zlib", plainPath, append([]string{"--compress-algo", "zlib"}, to...)},
		{"zip", plainPath, append([]string{"--compress-algo", "zip"}, to...)},
		{"bzip2", plainPath, append([]string{"--compress-algo", "bzip2"}, to...)},
		{"uncompressed", plainPath, append([]string{"--compress-algo", "none"}, to...)},
		{"armor", plainPath, append([]string{"--armor"}, to...)},
		{"AES256", plainPath, append([]string{"--cipher-algo", "AES256"}, to...)},
		{"two recipients", plainPath, toBoth},
		{"hidden recipient", plainPath, append([]string{"--throw-keyids"}, to...)},
		{"empty plaintext", emptyPath, to},
	} {
		msg := encrypt(c.name, c.in, c.args...)
		msgs[c.name] = msg
		want := plain
		if c.in == emptyPath {
			want = nil
		}
		got, calls, err := decrypt(k, priv, msg)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: plaintext of %d bytes differs from the %d bytes encrypted", c.name, len(got), len(want))
		}
		if calls != 1 {
			t.Errorf("%s: %d decryptions, want 1", c.name, calls)
		}
	}
	if t.Failed() {
		return
	}
	// gpg cannot decrypt (it has no secret key) but lists the packets.
	list, _ := gpgRun(home, "--list-packets", writeFile(t, home, "default.gpg", msgs["default compression"]))
	t.Logf("gpg --list-packets of the default message:\n%s", list)

	// The other recipient's key does not decrypt what was encrypted to
	// both: the session key packet for k is not used.
	if _, calls, err := decrypt(other, testSigners()[1].signer.(*rsa.PrivateKey), msgs["two recipients"]); err != nil || calls != 1 {
		t.Errorf("other recipient: error %v after %d decryptions", err, calls)
	}

	uncompressed := msgs["uncompressed"]
	flip := func(i int) []byte {
		b := bytes.Clone(uncompressed)
		b[i] ^= 0x01
		return b
	}
	for _, c := range []struct {
		name  string
		msg   []byte
		calls int
		want  string
	}{
		{"flipped byte in the literal data", flip(len(uncompressed) / 2), 1, "integrity check"},
		{"flipped byte in the MDC", flip(len(uncompressed) - 3), 1, "integrity check"},
		{"flipped byte in the session key", flip(20), 1, "session key"},
		{"truncated", uncompressed[:len(uncompressed)-30], 1, ""},
		{"to another key", encrypt("other", plainPath, "-r", other.FingerprintHex()), 0, "not encrypted to key " + k.FingerprintHex()},
		{"to another key, hidden", encrypt("other-hidden", plainPath, "--throw-keyids", "-r", other.FingerprintHex()), 1, "session key"},
		{"random bytes", plain[len(plain)-1000:], 0, ""},
		{"text", []byte("hello, world\n"), 0, "neither binary OpenPGP nor ASCII armor"},
		{"empty", nil, 0, "empty input"},
		{"public key", mustCert(t, k), 0, "not encrypted"},
		{"armored signature", mustArmoredSig(t, k), 0, `armor block is "PGP SIGNATURE"`},
	} {
		got, calls, err := decrypt(k, priv, c.msg)
		if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrDecrypt containing %q", c.name, err, c.want)
		}
		if calls != c.calls {
			t.Errorf("%s: %d decryptions, want %d", c.name, calls, c.calls)
		}
		if c.name == "flipped byte in the literal data" {
			t.Logf("%s: %v (%d bytes written before the integrity check failed)", c.name, err, len(got))
		}
	}
}

func mustCert(t *testing.T, k *Key) []byte {
	t.Helper()
	cert, err := k.Certificate([]string{testUID}, testSigTime)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func mustArmoredSig(t *testing.T, k *Key) []byte {
	t.Helper()
	sig, err := k.SignDetachedArmored(strings.NewReader("x"), false, testSigTime)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// goCryptoMessage builds an encrypted message with go-crypto's packet
// writers: one session key packet per recipient (key id hidden if hidden),
// SEIPD v2 with AEAD mode mode if mode is not zero and v1 otherwise, and
// the given packets inside (each written by a function).
func goCryptoMessage(t *testing.T, recipients []*Key, hidden bool, mode packet.AEADMode, inner ...func(io.WriteCloser) error) []byte {
	t.Helper()
	config := &packet.Config{}
	aead := mode != 0
	if aead {
		config.AEADConfig = &packet.AEADConfig{DefaultMode: mode}
	}
	key := make([]byte, 32)
	rand.Read(key)
	var buf bytes.Buffer
	for _, r := range recipients {
		pub := packet.NewRSAPublicKey(r.created, r.pub.(*rsa.PublicKey))
		if err := packet.SerializeEncryptedKeyAEADwithHiddenOption(&buf, pub, packet.CipherAES256, aead, key, hidden, config); err != nil {
			t.Fatal(err)
		}
	}
	w, err := packet.SerializeSymmetricallyEncrypted(&buf, packet.CipherAES256, aead, packet.CipherSuite{Cipher: packet.CipherAES256, Mode: mode}, key, config)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range inner {
		if err := f(w); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// literal returns a function that writes a literal data packet.
func literal(data []byte) func(io.WriteCloser) error {
	return func(w io.WriteCloser) error {
		lw, err := packet.SerializeLiteral(nopCloser{w}, true, "data.bin", 0)
		if err != nil {
			return err
		}
		if _, err := lw.Write(data); err != nil {
			return err
		}
		return lw.Close()
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// TestDecryptGoCryptoMessages covers what gpg 2.2 does not write: SEIPD v2
// (AEAD) with v6 session key packets, hidden recipients that are not first,
// signed and encrypted messages, and malformed message structures.
func TestDecryptGoCryptoMessages(t *testing.T) {
	k, other, priv := decryptKeys(t)
	plain := testPlaintext()

	for _, mode := range []packet.AEADMode{packet.AEADModeOCB, packet.AEADModeEAX, packet.AEADModeGCM} {
		msg := goCryptoMessage(t, []*Key{other, k}, false, mode, literal(plain))
		if got, calls, err := decrypt(k, priv, msg); err != nil || !bytes.Equal(got, plain) || calls != 1 {
			t.Errorf("SEIPD v2, AEAD mode %d: error %v, %d decryptions, plaintext equal: %v", mode, err, calls, bytes.Equal(got, plain))
		}
		bad := bytes.Clone(msg)
		bad[len(bad)-100] ^= 0x80
		if _, _, err := decrypt(k, priv, bad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("SEIPD v2, AEAD mode %d, changed byte: error %v, want ErrDecrypt", mode, err)
		}
	}

	// A signed and encrypted message, as gpg --sign --encrypt writes it.
	signer, err := gopenpgp.NewEntity("Signer", "", "signer@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	recipients, err := gopenpgp.ReadKeyRing(bytes.NewReader(mustCert(t, k)))
	if err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	w, err := gopenpgp.Encrypt(&signed, recipients, signer, nil, &packet.Config{DefaultCompressionAlgo: packet.CompressionZLIB})
	if err != nil {
		t.Fatalf("go-crypto cannot encrypt to the certificate: %v", err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, calls, err := decrypt(k, priv, signed.Bytes()); err != nil || !bytes.Equal(got, plain) || calls != 1 {
		t.Errorf("signed and encrypted: error %v, %d decryptions, plaintext equal: %v", err, calls, bytes.Equal(got, plain))
	}

	// Two hidden recipients: only the first is tried.
	if got, calls, err := decrypt(k, priv, goCryptoMessage(t, []*Key{k, other}, true, 0, literal(plain))); err != nil || !bytes.Equal(got, plain) || calls != 1 {
		t.Errorf("hidden recipients, k first: error %v, %d decryptions", err, calls)
	}
	if _, calls, err := decrypt(k, priv, goCryptoMessage(t, []*Key{other, k}, true, 0, literal(plain))); !errors.Is(err, ErrDecrypt) || calls != 1 {
		t.Errorf("hidden recipients, k second: error %v after %d decryptions, want ErrDecrypt after 1", err, calls)
	}
	// A named session key packet for k is preferred over a hidden one.
	named := goCryptoMessage(t, []*Key{other, k}, false, 0, literal(plain))
	hiddenOther := goCryptoMessage(t, []*Key{other}, true, 0, literal(plain))
	if got, calls, err := decrypt(k, priv, append(bytes.Clone(pkeskOf(hiddenOther)), named...)); err != nil || !bytes.Equal(got, plain) || calls != 1 {
		t.Errorf("hidden packet for another key before k's: error %v, %d decryptions", err, calls)
	}

	// Malformed structures inside valid encryption.
	for _, c := range []struct {
		name  string
		msg   []byte
		calls int
		want  string
	}{
		{"two literal data packets", goCryptoMessage(t, []*Key{k}, false, 0, literal(plain[:10]), literal(plain[:10])), 1, "more than one literal"},
		{"no literal data", goCryptoMessage(t, []*Key{k}, false, 0), 1, "no literal data"},
		{"a user id inside", goCryptoMessage(t, []*Key{k}, false, 0, literal(plain[:10]), func(w io.WriteCloser) error {
			_, err := w.Write([]byte{0xcd, 3, 'u', 'i', 'd'})
			return err
		}), 1, "*packet.UserId"},
		{"unprotected data (tag 9)", append(bytes.Clone(pkeskOf(named)), 0xc9, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 0, "not integrity protected"},
		{"trailing packet", append(bytes.Clone(named), 0xcd, 3, 'u', 'i', 'd'), 1, "more packets after"},
		{"session keys only", bytes.Clone(pkeskOf(named)), 0, "no encrypted data"},
		{"v3 session key with SEIPD v2", append(bytes.Clone(pkeskOf(named)), seipdOf(goCryptoMessage(t, []*Key{k}, false, packet.AEADModeOCB, literal(plain)))...), 0, "cannot go with"},
	} {
		_, calls, err := decrypt(k, priv, c.msg)
		if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrDecrypt containing %q", c.name, err, c.want)
		}
		if calls != c.calls {
			t.Errorf("%s: %d decryptions, want %d", c.name, calls, c.calls)
		}
	}
}

// pkeskOf returns the session key packets of a go-crypto message: the bytes
// before the SEIPD packet (tag 18). The packets before it have definite
// lengths.
func pkeskOf(msg []byte) []byte {
	for i := 0; i < len(msg); {
		ctb := msg[i]
		var tag byte
		var n, hdr int
		if ctb&0x40 != 0 { // new format
			tag = ctb & 0x3f
			switch l := int(msg[i+1]); {
			case l < 192:
				n, hdr = l, 2
			case l < 224:
				n, hdr = (l-192)<<8+int(msg[i+2])+192, 3
			case l == 255:
				n, hdr = int(binary.BigEndian.Uint32(msg[i+2:])), 6
			}
		} else { // old format
			tag = ctb >> 2 & 0x0f
			switch ctb & 3 {
			case 0:
				n, hdr = int(msg[i+1]), 2
			case 1:
				n, hdr = int(binary.BigEndian.Uint16(msg[i+1:])), 3
			case 2:
				n, hdr = int(binary.BigEndian.Uint32(msg[i+1:])), 5
			}
		}
		if tag == 18 {
			return msg[:i]
		}
		if hdr == 0 {
			panic("pkeskOf: indeterminate length before the SEIPD packet")
		}
		i += hdr + n
	}
	panic("pkeskOf: no SEIPD packet")
}

func seipdOf(msg []byte) []byte { return msg[len(pkeskOf(msg)):] }

func TestDecryptRefuses(t *testing.T) {
	k, other, priv := decryptKeys(t)
	msg := goCryptoMessage(t, []*Key{k}, false, 0, literal([]byte("secret")))
	ed, _ := NewKey(testSigners()[4].signer, testCreated)

	if err := Decrypt(io.Discard, bytes.NewReader(msg), ed, &countingDecrypter{priv: priv}); !errors.Is(err, ErrUnsupportedAlgorithm) || errors.Is(err, ErrDecrypt) {
		t.Errorf("Ed25519 key: error %v, want ErrUnsupportedAlgorithm", err)
	}
	if err := Decrypt(io.Discard, bytes.NewReader(msg), other, &countingDecrypter{priv: priv}); err == nil || !strings.Contains(err.Error(), "not that of key") || errors.Is(err, ErrDecrypt) {
		t.Errorf("decrypter of another key: error %v", err)
	}

	tokenErr := errors.New("CKR_DEVICE_REMOVED")
	err := Decrypt(io.Discard, bytes.NewReader(msg), k, failingDecrypter{priv, tokenErr})
	if !errors.Is(err, ErrDecrypt) || !errors.Is(err, tokenErr) {
		t.Errorf("failing decrypter: error %v, want one wrapping ErrDecrypt and the decrypter's error", err)
	}

	err = Decrypt(io.Discard, io.MultiReader(bytes.NewReader(msg[:100]), errReader{}), k, &countingDecrypter{priv: priv})
	if err == nil || errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "reading the encrypted message: boom") {
		t.Errorf("read error: error %v", err)
	}
	err = Decrypt(failWriter{}, bytes.NewReader(msg), k, &countingDecrypter{priv: priv})
	if err == nil || errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "writing the plaintext: full") {
		t.Errorf("write error: error %v", err)
	}
}

type failingDecrypter struct {
	priv *rsa.PrivateKey
	err  error
}

func (f failingDecrypter) Public() crypto.PublicKey { return &f.priv.PublicKey }
func (f failingDecrypter) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	return nil, f.err
}

// FuzzDecrypt checks that no input makes Decrypt panic or decrypt more
// than once, and that whatever it accepts is integrity protected.
func FuzzDecrypt(f *testing.F) {
	k, err := NewKey(testSigners()[0].signer, testCreated)
	if err != nil {
		f.Fatal(err)
	}
	priv := testSigners()[0].signer.(*rsa.PrivateKey)
	t := &testing.T{}
	f.Add(goCryptoMessage(t, []*Key{k}, false, 0, literal([]byte("hello"))))
	f.Add(goCryptoMessage(t, []*Key{k}, true, packet.AEADModeOCB, literal([]byte("hello"))))
	f.Add([]byte("-----BEGIN PGP MESSAGE-----\n\nhQ==\n-----END PGP MESSAGE-----\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, calls, err := decrypt(k, priv, msg)
		if calls > 1 {
			t.Fatalf("%d decryptions", calls)
		}
		if err != nil && !errors.Is(err, ErrDecrypt) {
			t.Fatalf("error %v does not wrap ErrDecrypt", err)
		}
	})
}

// TestCertificateKeyFlags checks the key flags of the self-signatures:
// certify and sign for every key, and encrypt for RSA keys only.
func TestCertificateKeyFlags(t *testing.T) {
	for _, tc := range testSigners() {
		k, err := NewKey(tc.signer, testCreated)
		if err != nil {
			t.Fatal(err)
		}
		el, err := gopenpgp.ReadKeyRing(bytes.NewReader(mustCert(t, k)))
		if err != nil {
			t.Fatal(err)
		}
		sig := el[0].Identities[testUID].SelfSignature
		rsaKey := tc.algo == "1"
		if !sig.FlagsValid || !sig.FlagCertify || !sig.FlagSign || sig.FlagEncryptCommunications != rsaKey || sig.FlagEncryptStorage != rsaKey ||
			sig.FlagAuthenticate || sig.FlagSplitKey || sig.FlagGroupKey {
			t.Errorf("%s: key flags certify %v, sign %v, encrypt %v/%v, others %v/%v/%v", tc.name, sig.FlagCertify, sig.FlagSign,
				sig.FlagEncryptCommunications, sig.FlagEncryptStorage, sig.FlagAuthenticate, sig.FlagSplitKey, sig.FlagGroupKey)
		}
	}
}
