package hsm_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/signet-project/signet/hsm"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Main(m)) }

// keyTypes are the key types under test; SIGNET_HSM_KEYTYPES narrows them
// (the arm64 run under emulation tests rsa2048, ecdsa-p256 and ed25519).
func keyTypes(t testing.TB) []hsm.KeyType {
	env := os.Getenv("SIGNET_HSM_KEYTYPES")
	if env == "" {
		return hsm.KeyTypes()
	}
	var out []hsm.KeyType
	for _, s := range strings.Split(env, ",") {
		kt, err := hsm.ParseKeyType(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, kt)
	}
	return out
}

// opensslVerify checks sig over msg with the openssl command, as an
// independent verifier. opts picks the padding and hash.
func opensslVerify(t *testing.T, pub crypto.PublicKey, msg, sig []byte, opts crypto.SignerOpts) error {
	t.Helper()
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"pub.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"msg":     msg,
		"sig":     sig,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var args []string
	if _, ok := pub.(ed25519.PublicKey); ok {
		args = []string{"pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg", "-sigfile", "sig"}
	} else {
		args = []string{"dgst", "-" + strings.ToLower(strings.ReplaceAll(opts.HashFunc().String(), "-", "")), "-verify", "pub.pem", "-signature", "sig"}
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt := "-1" // digest length
			if pss.SaltLength == rsa.PSSSaltLengthAuto {
				salt = "-2" // maximum
			}
			args = append(args, "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:"+salt)
		}
		args = append(args, "msg")
	}
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}

// signAndCheck signs msg the way crypto.Signer callers do and checks the
// signature with Go and with openssl; a changed message must fail both.
func signAndCheck(t *testing.T, s crypto.Signer, msg []byte, opts crypto.SignerOpts) {
	t.Helper()
	digest := msg
	if h := opts.HashFunc(); h != 0 {
		hh := h.New()
		hh.Write(msg)
		digest = hh.Sum(nil)
	}
	sig, err := s.Sign(rand.Reader, digest, opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if err := goVerify(s.Public(), digest, sig, opts); err != nil {
		t.Fatalf("Go rejects the token's signature: %v", err)
	}
	if err := opensslVerify(t, s.Public(), msg, sig, opts); err != nil {
		t.Fatalf("openssl rejects the token's signature: %v", err)
	}
	bad := append(bytes.Clone(msg), '!')
	if err := opensslVerify(t, s.Public(), bad, sig, opts); err == nil {
		t.Fatal("openssl accepted the signature over a different message")
	}
}

func goVerify(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(p, opts.HashFunc(), digest, sig, pss)
		}
		return rsa.VerifyPKCS1v15(p, opts.HashFunc(), digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return errors.New("ECDSA verification failed")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(p, digest, sig) {
			return errors.New("Ed25519 verification failed")
		}
	}
	return nil
}

// signerOpts are the signing modes each key type must support.
func signerOpts(kt hsm.KeyType) []crypto.SignerOpts {
	switch {
	case kt.IsRSA():
		return []crypto.SignerOpts{crypto.SHA256, crypto.SHA512,
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256},
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA384}}
	case kt == hsm.ECDSAP256:
		return []crypto.SignerOpts{crypto.SHA256}
	case kt == hsm.ECDSAP384:
		return []crypto.SignerOpts{crypto.SHA384, crypto.SHA256}
	}
	return []crypto.SignerOpts{crypto.Hash(0)}
}

func TestGenerateSignVerify(t *testing.T) {
	t.Parallel() // a token of its own
	tok := softhsmtest.New(t).Open(t)
	for _, kt := range keyTypes(t) {
		t.Run(kt.String(), func(t *testing.T) {
			if (kt == hsm.RSA3072 || kt == hsm.RSA4096) && testing.Short() {
				t.Skip("SoftHSM2's RSA key generation: only RSA-2048 with -short")
			}
			key, err := tok.GenerateKey(hsm.GenerateRequest{Type: kt, Label: "gen-" + kt.String()})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := hsm.KeyTypeOf(key.Public()); err != nil || got != kt {
				t.Fatalf("public key type = %v, %v; want %v", got, err, kt)
			}
			attrs, err := key.Attributes()
			if err != nil {
				t.Fatal(err)
			}
			want := hsm.KeyAttributes{Sensitive: true, Extractable: false, AlwaysSensitive: true, NeverExtractable: true}
			if attrs != want {
				t.Fatalf("attributes = %+v, want %+v", attrs, want)
			}
			for _, opts := range signerOpts(kt) {
				signAndCheck(t, key, []byte("signet "+kt.String()), opts)
			}
		})
	}
}

func TestSignRefusals(t *testing.T) {
	tok := softhsmtest.New(t).Open(t)
	ed, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.Ed25519, Label: "ed"})
	if err != nil {
		t.Fatal(err)
	}
	ec, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.ECDSAP256, Label: "ec"})
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	cases := []struct {
		name string
		key  crypto.Signer
		dig  []byte
		opts crypto.SignerOpts
	}{
		{"ed25519ph", ed, d[:], crypto.SHA256},
		{"ed25519 context", ed, []byte("x"), &ed25519.Options{Context: "c"}},
		{"ecdsa without hash", ec, d[:], crypto.Hash(0)},
		{"digest length", ec, d[:20], crypto.SHA256},
	}
	for _, c := range cases {
		if _, err := c.key.Sign(nil, c.dig, c.opts); err == nil {
			t.Errorf("%s: Sign succeeded, want a refusal", c.name)
		}
	}
}

func pemRoundTrip(t *testing.T, priv crypto.Signer) crypto.Signer {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

func TestImport(t *testing.T) {
	t.Parallel() // a token of its own
	tok := softhsmtest.New(t).Open(t)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for i, soft := range []crypto.Signer{rsaKey, p256, p384, edKey} {
		kt, _ := hsm.KeyTypeOf(soft.Public())
		t.Run(kt.String(), func(t *testing.T) {
			soft := pemRoundTrip(t, soft)
			key, err := tok.ImportKey(hsm.ImportRequest{Key: soft, Label: "imp-" + kt.String(), ID: []byte{0x10, byte(i)}})
			if err != nil {
				t.Fatal(err)
			}
			found, err := tok.FindKey([]byte{0x10, byte(i)}, "")
			if err != nil {
				t.Fatal(err)
			}
			type eq interface{ Equal(crypto.PublicKey) bool }
			if !found.Public().(eq).Equal(soft.Public()) {
				t.Fatal("imported key's public half differs from the original")
			}
			attrs, err := found.Attributes()
			if err != nil {
				t.Fatal(err)
			}
			if !attrs.Sensitive || attrs.Extractable {
				t.Fatalf("imported key attributes = %+v, want sensitive and not extractable", attrs)
			}
			opts := signerOpts(kt)[0]
			signAndCheck(t, key, []byte("imported"), opts)
		})
	}
	if _, err := tok.ImportKey(hsm.ImportRequest{Key: edKey, Label: "imp-ed25519"}); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("importing under a used label: err = %v, want ErrKeyExists", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := tok.ImportKey(hsm.ImportRequest{Key: small, Label: "small"}); !errors.Is(err, hsm.ErrUnsupported) {
		t.Fatalf("importing RSA-1024: err = %v, want ErrUnsupported", err)
	}
}

func TestFindListDelete(t *testing.T) {
	tok := softhsmtest.New(t).Open(t)
	a, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.ECDSAP256, Label: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.Ed25519, Label: "b", ID: []byte{0xbb, 0x01}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.Ed25519, Label: "c", ID: []byte{0xbb, 0x01}}); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("generate with a used id: err = %v, want ErrKeyExists", err)
	}
	keys, err := tok.Keys()
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, k := range keys {
		labels = append(labels, k.Label()+"/"+k.Type().String())
	}
	if got := strings.Join(labels, ","); got != "a/ecdsa-p256,b/ed25519" && got != "b/ed25519,a/ecdsa-p256" {
		t.Fatalf("Keys() = %s", got)
	}
	byID, err := tok.FindKey(a.ID(), "")
	if err != nil || byID.Label() != "a" {
		t.Fatalf("FindKey by id: %v, %v", byID, err)
	}
	if _, err := tok.FindKey(nil, "b"); err != nil {
		t.Fatalf("FindKey by label: %v", err)
	}
	if _, err := tok.FindKey(a.ID(), "b"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("FindKey with mismatched id and label: err = %v, want ErrKeyNotFound", err)
	}
	if err := tok.DeleteKey(nil, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.FindKey(nil, "a"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("FindKey after delete: err = %v, want ErrKeyNotFound", err)
	}
	d := sha256.Sum256(nil)
	if _, err := a.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("signing with a deleted key: err = %v, want ErrKeyNotFound", err)
	}
	if err := tok.DeleteKey(nil, "a"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("deleting twice: err = %v, want ErrKeyNotFound", err)
	}
}

func TestOpenRefusals(t *testing.T) {
	tk := softhsmtest.New(t)
	if _, err := hsm.Open(hsm.Config{Module: tk.Module, TokenLabel: "no-such-token"}); !errors.Is(err, hsm.ErrTokenNotFound) {
		t.Fatalf("unknown label: err = %v, want ErrTokenNotFound", err)
	} else if !strings.Contains(err.Error(), tk.Label) {
		t.Errorf("unknown label: error %q does not list the tokens present", err)
	}
	if _, err := hsm.Open(hsm.Config{Module: "/nonexistent/libpkcs11.so", TokenLabel: "x"}); err == nil {
		t.Fatal("opening a missing module succeeded")
	}
	if _, err := hsm.Open(hsm.Config{Module: "/etc/hostname", TokenLabel: "x"}); err == nil {
		t.Fatal("opening a file that is not a library succeeded")
	}
	tok, err := hsm.Open(tk.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	wrong := append(bytes.Clone(tk.PIN), 'x')
	err = tok.Login(wrong)
	if !errors.Is(err, hsm.ErrBadPIN) {
		t.Fatalf("wrong PIN: err = %v, want ErrBadPIN", err)
	}
	if strings.Contains(err.Error(), string(wrong)) {
		t.Fatal("the error message contains the PIN")
	}
	if _, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.Ed25519, Label: "x"}); !errors.Is(err, hsm.ErrNotLoggedIn) {
		t.Fatalf("generate before login: err = %v, want ErrNotLoggedIn", err)
	}
	if err := tok.Login(tk.PIN); err != nil {
		t.Fatal(err)
	}
	if err := tok.Login(wrong); !errors.Is(err, hsm.ErrBadPIN) {
		t.Fatalf("wrong PIN while logged in: err = %v, want ErrBadPIN", err)
	}
	if _, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.Ed25519, Label: "still-works"}); err != nil {
		t.Fatalf("a wrong PIN logged the good session out: %v", err)
	}
	if _, err := hsm.ParseKeyType("dsa1024"); !errors.Is(err, hsm.ErrUnsupported) {
		t.Fatalf("ParseKeyType(dsa1024): err = %v, want ErrUnsupported", err)
	}
}

// TestRecovery breaks the token's state behind the signer's back and checks
// that signing goes on without reopening anything by hand.
func TestRecovery(t *testing.T) {
	tok := softhsmtest.New(t).Open(t)
	key, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.ECDSAP256, Label: "recover"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func() error {
		d := sha256.Sum256([]byte("recover"))
		sig, err := key.Sign(nil, d[:], crypto.SHA256)
		if err == nil && !ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), d[:], sig) {
			err = errors.New("bad signature")
		}
		return err
	}
	// Warm the pool with several sessions, so every one of them is broken.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); sign() }()
	}
	wg.Wait()
	breaks := []struct {
		name string
		fn   func(*hsm.Token) error
	}{
		{"close all sessions (CKR_SESSION_HANDLE_INVALID)", hsm.CloseAllSessionsBehindBack},
		{"log out (CKR_USER_NOT_LOGGED_IN)", hsm.LogoutBehindBack},
	}
	// SoftHSM2 cannot lose its device; a YubiHSM 2 whose connector restarts
	// does. Close the sessions for real and report the device's error code.
	for _, code := range []struct {
		name string
		code uint
	}{
		{"CKR_DEVICE_ERROR", pkcs11.CKR_DEVICE_ERROR},
		{"CKR_TOKEN_NOT_PRESENT", pkcs11.CKR_TOKEN_NOT_PRESENT},
		{"CKR_DEVICE_REMOVED", pkcs11.CKR_DEVICE_REMOVED},
	} {
		breaks = append(breaks, struct {
			name string
			fn   func(*hsm.Token) error
		}{code.name, func(t *hsm.Token) error {
			hsm.InjectError(t, code.code)
			return hsm.CloseAllSessionsBehindBack(t)
		}})
	}
	for _, b := range breaks {
		if err := b.fn(tok); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		for i := 0; i < 3; i++ {
			if err := sign(); err != nil {
				t.Fatalf("after %s, sign #%d: %v", b.name, i, err)
			}
		}
	}
}

// TestRecoveryAfterFinalize runs in a child process: after C_Finalize and
// C_Initialize, SoftHSM2 2.6 can no longer generate EC keys, which would
// break the tests that run after it in the same process.
func TestRecoveryAfterFinalize(t *testing.T) {
	if os.Getenv("SIGNET_FINALIZE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRecoveryAfterFinalize$", "-test.v")
		cmd.Env = append(os.Environ(), "SIGNET_FINALIZE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestRecoveryAfterFinalize") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	tok := softhsmtest.New(t).Open(t)
	key, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.RSA2048, Label: "fin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := hsm.FinalizeBehindBack(tok); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		d := sha256.Sum256([]byte{byte(i)})
		sig, err := key.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("sign #%d after C_Finalize: %v", i, err)
		}
		if err := rsa.VerifyPKCS1v15(key.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrentSessionCap(t *testing.T) {
	tk := softhsmtest.New(t)
	cfg := tk.Config()
	cfg.MaxSessions = 3
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if err := tok.Login(tk.PIN); err != nil {
		t.Fatal(err)
	}
	key, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.Ed25519, Label: "conc"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				msg := []byte{byte(g), byte(i)}
				sig, err := key.Sign(nil, msg, crypto.Hash(0))
				if err != nil || !ed25519.Verify(key.Public().(ed25519.PublicKey), msg, sig) {
					errs <- errors.Join(errors.New("bad concurrent signature"), err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := hsm.MaxOpenSessions(tok); n < 2 || n > 3 {
		t.Fatalf("16 goroutines had up to %d sessions open at once, want 2..3", n)
	}
}

func TestWrapPIN(t *testing.T) {
	params := hsm.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}
	b := hsm.Binding{Key: "fedora-43", User: "releng"}
	pin := []byte("0001password")
	w, err := hsm.WrapPIN(pin, []byte("correct horse"), b, params)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, pin) {
		t.Fatal("the wrapped PIN contains the PIN")
	}
	got, err := hsm.UnwrapPIN(w, []byte("correct horse"), b)
	if err != nil || !bytes.Equal(got, pin) {
		t.Fatalf("UnwrapPIN = %q, %v", got, err)
	}
	tampered := bytes.Clone(w)
	tampered[len(tampered)-1] ^= 1
	refusals := []struct {
		name    string
		wrapped []byte
		pass    string
		b       hsm.Binding
	}{
		{"wrong passphrase", w, "correct hors", b},
		{"another user", w, "correct horse", hsm.Binding{Key: b.Key, User: "mallory"}},
		{"another key", w, "correct horse", hsm.Binding{Key: "fedora-42", User: b.User}},
		{"tampered", tampered, "correct horse", b},
	}
	for _, r := range refusals {
		if _, err := hsm.UnwrapPIN(r.wrapped, []byte(r.pass), r.b); !errors.Is(err, hsm.ErrBadPassphrase) {
			t.Errorf("%s: err = %v, want ErrBadPassphrase", r.name, err)
		}
	}
	if _, err := hsm.UnwrapPIN(w[:20], []byte("correct horse"), b); err == nil || errors.Is(err, hsm.ErrBadPassphrase) {
		t.Errorf("truncated: err = %v, want a malformed-input error", err)
	}
	huge := bytes.Clone(w)
	huge[5], huge[6] = 0xff, 0xff // memory parameter far above the limit
	if _, err := hsm.UnwrapPIN(huge, []byte("correct horse"), b); err == nil || errors.Is(err, hsm.ErrBadPassphrase) {
		t.Errorf("absurd KDF memory: err = %v, want a parameter error", err)
	}
	if _, err := hsm.WrapPIN(pin, nil, b, params); err == nil {
		t.Error("wrapping under an empty passphrase succeeded")
	}
}

func TestUnwrapperCachesOnlySuccess(t *testing.T) {
	params := hsm.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}
	b := hsm.Binding{Key: "k", User: "u"}
	w, err := hsm.WrapPIN([]byte("1234"), []byte("pass"), b, params)
	if err != nil {
		t.Fatal(err)
	}
	u := hsm.NewUnwrapper(time.Minute, 16)
	before := hsm.KDFRuns()
	for i := 0; i < 10; i++ {
		pin, err := u.Unwrap(w, []byte("pass"), b)
		if err != nil || string(pin) != "1234" {
			t.Fatalf("Unwrap #%d = %q, %v", i, pin, err)
		}
	}
	if runs := hsm.KDFRuns() - before; runs != 1 {
		t.Fatalf("10 unwraps with one passphrase ran the KDF %d times, want 1", runs)
	}
	before = hsm.KDFRuns()
	for i := 0; i < 3; i++ {
		if _, err := u.Unwrap(w, []byte("wrong"), b); !errors.Is(err, hsm.ErrBadPassphrase) {
			t.Fatalf("wrong passphrase: err = %v", err)
		}
	}
	if runs := hsm.KDFRuns() - before; runs != 3 {
		t.Fatalf("3 wrong passphrases ran the KDF %d times, want 3 (failures must not be cached)", runs)
	}
	if _, err := u.Unwrap(w, []byte("pass"), hsm.Binding{Key: "k", User: "other"}); !errors.Is(err, hsm.ErrBadPassphrase) {
		t.Fatalf("cached entry served for another binding: err = %v", err)
	}
	u.Forget()
	before = hsm.KDFRuns()
	if _, err := u.Unwrap(w, []byte("pass"), b); err != nil {
		t.Fatal(err)
	}
	if hsm.KDFRuns()-before != 1 {
		t.Fatal("Forget did not drop the cached PIN")
	}
}

func TestHashPrefixesMatchGo(t *testing.T) {
	// The PKCS#1 v1.5 DigestInfo prefixes are checked end to end above for
	// SHA-256/512; check SHA-384 and SHA-1 against Go too.
	tok := softhsmtest.New(t).Open(t)
	key, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.RSA2048, Label: "prefix"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA384} {
		d := h.New()
		d.Write([]byte("m"))
		sum := d.Sum(nil)
		sig, err := key.Sign(nil, sum, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(key.Public().(*rsa.PublicKey), h, sum, sig); err != nil {
			t.Fatalf("%v: %v", h, err)
		}
	}
}

// Many requests arriving at once with the same passphrase run Argon2id
// once, not once each (64 concurrent misses at 64 MiB would need 4 GiB).
func TestUnwrapperConcurrentMissesRunKDFOnce(t *testing.T) {
	params := hsm.KDFParams{Time: 2, MemoryKiB: 16 * 1024, Threads: 1}
	b := hsm.Binding{Key: "k", User: "u"}
	w, err := hsm.WrapPIN([]byte("1234"), []byte("pass"), b, params)
	if err != nil {
		t.Fatal(err)
	}
	u := hsm.NewUnwrapper(time.Minute, 16)
	before := hsm.KDFRuns()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pin, err := u.Unwrap(w, []byte("pass"), b)
			if err == nil && string(pin) != "1234" {
				err = errors.New("wrong PIN")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if runs := hsm.KDFRuns() - before; runs != 1 {
		t.Fatalf("32 concurrent unwraps ran the KDF %d times, want 1", runs)
	}
}

// TestOtherPINWhileSigning: once logged in, another PIN (a stale wrapped
// PIN) is refused with ErrOtherPIN without logging the working sessions
// out, so signing that runs meanwhile never fails.
func TestOtherPINWhileSigning(t *testing.T) {
	tk := softhsmtest.New(t)
	tok := tk.Open(t)
	key, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.ECDSAP256, Label: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	stale := append(bytes.Clone(tk.PIN), '0')
	digest := sha256.Sum256([]byte("signed while a stale PIN is tried"))
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		err := tok.Login(stale)
		if !errors.Is(err, hsm.ErrOtherPIN) || !errors.Is(err, hsm.ErrBadPIN) {
			t.Fatalf("a stale PIN while logged in: err = %v, want ErrOtherPIN (an ErrBadPIN)", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("signing failed while a stale PIN was tried: %v", err)
	}
	if err := tok.Login(tk.PIN); err != nil {
		t.Fatalf("the right PIN after stale ones: %v", err)
	}
}
