package yubihsmsim_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/signet-project/signet/hsm"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
	yubihsmsim "github.com/signet-project/signet/yubihsm-sim"
)

func TestMain(m *testing.M) {
	code := softhsmtest.Main(m)
	yubihsmsim.Cleanup()
	os.Exit(code)
}

// open makes a SoftHSM2 token, sets the module's environment (env: name,
// value pairs, on top of the real module's path), loads a fresh copy of
// the module, and opens the token through it with package hsm.
func open(t *testing.T, env ...string) (*hsm.Token, string) {
	t.Helper()
	tk := softhsmtest.New(t)
	so := yubihsmsim.Module(t)
	t.Setenv(yubihsmsim.EnvModule, tk.Module)
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
	tok, err := hsm.Open(hsm.Config{Module: so, TokenLabel: tk.Label, MaxSessions: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	if err := tok.Login(tk.PIN); err != nil {
		t.Fatal(err)
	}
	return tok, so
}

func generate(t *testing.T, tok *hsm.Token, typ hsm.KeyType, label string) *hsm.Key {
	t.Helper()
	k, err := tok.GenerateKey(hsm.GenerateRequest{Type: typ, Label: label})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// timedSign signs a digest, checks the signature with the public key, and
// returns how long the token took.
func timedSign(t *testing.T, k *hsm.Key) time.Duration {
	t.Helper()
	digest := sha256.Sum256([]byte("yubihsm-sim " + k.Label()))
	t0 := time.Now()
	sig, err := k.Sign(nil, digest[:], crypto.SHA256)
	d := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Fatalf("%s: the forwarded signature does not verify", k.Label())
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("%s: the forwarded signature does not verify: %v", k.Label(), err)
		}
	default:
		t.Fatalf("%s: unexpected public key %T", k.Label(), pub)
	}
	return d
}

// A signature takes at least the delay configured for its key, scaled.
// Only lower bounds are checked: a loaded machine makes things slower,
// never faster.
func TestSignTakesTheConfiguredDelay(t *testing.T) {
	tok, _ := open(t,
		yubihsmsim.EnvScale, "2",
		yubihsmsim.DelayEnv("P256"), "40", // 80 ms once scaled
		yubihsmsim.DelayEnv("RSA2048"), "100") // 200 ms once scaled
	ec := generate(t, tok, hsm.ECDSAP256, "ec")
	rk := generate(t, tok, hsm.RSA2048, "rsa")
	for i := 0; i < 2; i++ {
		if d := timedSign(t, ec); d < 80*time.Millisecond {
			t.Errorf("a P-256 signature took %v, less than the configured 40 ms x 2", d)
		}
		if d := timedSign(t, rk); d < 200*time.Millisecond {
			t.Errorf("an RSA-2048 signature took %v, less than the configured 100 ms x 2", d)
		}
	}
}

// With the published figures at a tenth, an RSA-2048 signature takes at
// least 13.9 ms.
func TestPublishedDefaults(t *testing.T) {
	tok, _ := open(t, yubihsmsim.EnvScale, "0.1")
	rk := generate(t, tok, hsm.RSA2048, "rsa")
	want := yubihsmsim.RSA2048Millis * time.Millisecond / 10
	if d := timedSign(t, rk); d < want {
		t.Errorf("an RSA-2048 signature took %v, less than the published %d ms / 10", d, yubihsmsim.RSA2048Millis)
	}
}

// The device does one operation at a time across all sessions: n
// signatures started together on n sessions take at least n delays.
func TestOneOperationAtATime(t *testing.T) {
	const delay = 100 * time.Millisecond
	tok, _ := open(t, yubihsmsim.EnvScale, "1", yubihsmsim.DelayEnv("P256"), "100")
	ec := generate(t, tok, hsm.ECDSAP256, "ec")
	timedSign(t, ec) // warm: sessions and the key handle
	for _, n := range []int{2, 4} {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				digest := sha256.Sum256([]byte("concurrent"))
				if _, err := ec.Sign(nil, digest[:], crypto.SHA256); err != nil {
					errs <- err
				}
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		d := time.Since(t0)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if d < time.Duration(n)*delay {
			t.Errorf("%d concurrent signatures took %v, less than %d x %v: the device ran them in parallel", n, d, n, delay)
		}
	}
}

// At most 16 sessions: the 17th is refused with CKR_SESSION_COUNT, one
// closed makes room again, and the token reports the limit, which package
// hsm then uses as its session cap.
func TestSessionLimit(t *testing.T) {
	tok, so := open(t)
	if got := tok.MaxSessions(); got != yubihsmsim.MaxSessions {
		t.Errorf("hsm.Token.MaxSessions() = %d with 64 asked; want the token's limit %d", got, yubihsmsim.MaxSessions)
	}
	label := tok.Info().Label
	tok.Close() // its sessions are closed; the module stays loaded

	ctx := pkcs11.New(so)
	if ctx == nil {
		t.Fatal("pkcs11.New could not load the module")
	}
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatal(err)
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	slot, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && ti.Label == label {
			slot, found = s, true
			if ti.MaxSessionCount != yubihsmsim.MaxSessions {
				t.Errorf("token info: ulMaxSessionCount %d, want %d", ti.MaxSessionCount, yubihsmsim.MaxSessions)
			}
		}
	}
	if !found {
		t.Fatalf("token %q not found through the module", label)
	}
	var open []pkcs11.SessionHandle
	defer func() {
		for _, h := range open {
			ctx.CloseSession(h)
		}
	}()
	for i := 0; i < yubihsmsim.MaxSessions; i++ {
		h, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
		open = append(open, h)
	}
	if ti, err := ctx.GetTokenInfo(slot); err != nil || ti.SessionCount != yubihsmsim.MaxSessions {
		t.Errorf("token info with 16 sessions open: %+v, %v; want ulSessionCount 16", ti.SessionCount, err)
	}
	if h, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION); !errors.Is(err, pkcs11.Error(pkcs11.CKR_SESSION_COUNT)) {
		if err == nil {
			open = append(open, h)
		}
		t.Fatalf("17th session: %v, want CKR_SESSION_COUNT", err)
	}
	if err := ctx.CloseSession(open[0]); err != nil {
		t.Fatal(err)
	}
	open = open[1:]
	h, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatalf("a session after one was closed: %v", err)
	}
	open = append(open, h)
}
