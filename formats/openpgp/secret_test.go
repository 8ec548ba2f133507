package openpgp

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testPassphrase = "correct horse battery staple"

// gpgKey generates a key with gpg and returns its fingerprint and creation
// time. An empty passphrase leaves the key unprotected.
func gpgKey(t *testing.T, home, uid, algo, passphrase string) (string, time.Time) {
	t.Helper()
	gpg(t, home, "--pinentry-mode", "loopback", "--passphrase", passphrase, "--quick-gen-key", uid, algo, "default", "never")
	out := gpg(t, home, "--with-colons", "--fingerprint", "="+uid)
	pubs, fprs := colons(out, "pub"), colons(out, "fpr")
	if len(pubs) != 1 || len(fprs) == 0 {
		t.Fatalf("gpg lists no single key for %q:\n%s", uid, out)
	}
	secs, err := strconv.ParseInt(pubs[0][5], 10, 64)
	if err != nil {
		t.Fatalf("gpg creation time %q: %v", pubs[0][5], err)
	}
	return fprs[0][9], time.Unix(secs, 0).UTC()
}

func gpgExport(t *testing.T, home, passphrase string, args ...string) []byte {
	t.Helper()
	return []byte(gpg(t, home, append([]string{"--pinentry-mode", "loopback", "--passphrase", passphrase}, args...)...))
}

func TestParseSecretKeyFromGPG(t *testing.T) {
	home := gpgHome(t)
	for _, c := range []struct {
		algo, passphrase string
		armor            bool
		check            func(any) bool
	}{
		{"rsa3072", testPassphrase, true, func(k any) bool { _, ok := k.(*rsa.PrivateKey); return ok }},
		{"ed25519", testPassphrase, true, func(k any) bool { _, ok := k.(ed25519.PrivateKey); return ok }},
		{"nistp256", testPassphrase, true, func(k any) bool { _, ok := k.(*ecdsa.PrivateKey); return ok }},
		{"nistp384", testPassphrase, false, func(k any) bool { _, ok := k.(*ecdsa.PrivateKey); return ok }},
		{"ed25519", "", false, func(k any) bool { _, ok := k.(ed25519.PrivateKey); return ok }},
	} {
		name := fmt.Sprintf("%s-passphrase=%v-armor=%v", c.algo, c.passphrase != "", c.armor)
		t.Run(name, func(t *testing.T) {
			if c.algo == "rsa3072" && testing.Short() {
				t.Skip("gpg's RSA key generation: not with -short")
			}
			uid := "Import " + name + " <import@example.org>"
			fpr, created := gpgKey(t, home, uid, c.algo, c.passphrase)
			args := []string{"--export-secret-keys", "=" + uid}
			if c.armor {
				args = append(args, "--armor")
			}
			data := gpgExport(t, home, c.passphrase, args...)
			var pass []byte
			if c.passphrase != "" {
				pass = []byte(c.passphrase)
			}
			sk, err := ParseSecretKey(data, pass)
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(sk.Private) {
				t.Errorf("Private is a %T", sk.Private)
			}
			if !sk.Created.Equal(created) {
				t.Errorf("Created %v, gpg says %v", sk.Created, created)
			}
			if len(sk.UserIDs) != 1 || sk.UserIDs[0] != uid {
				t.Errorf("UserIDs %q, want [%q]", sk.UserIDs, uid)
			}
			if got := fmt.Sprintf("%X", sk.Fingerprint); got != fpr {
				t.Errorf("Fingerprint %s, gpg says %s", got, fpr)
			}
			k, err := NewKey(sk.Private, sk.Created)
			if err != nil {
				t.Fatal(err)
			}
			if k.FingerprintHex() != fpr {
				t.Fatalf("NewKey fingerprint %s, gpg says %s", k.FingerprintHex(), fpr)
			}
			// The imported key signs; gpg verifies with the key it made.
			sig, err := k.SignDetached(strings.NewReader("imported\n"), false, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			status := gpg(t, home, "--status-fd", "1", "--verify", writeFile(t, t.TempDir(), "s", sig), writeFile(t, t.TempDir(), "d", []byte("imported\n")))
			if !strings.Contains(status, "VALIDSIG "+fpr) {
				t.Errorf("gpg did not verify the imported key's signature:\n%s", status)
			}
		})
	}
}

func TestParseSecretKeyErrors(t *testing.T) {
	home := gpgHome(t)
	uid := "Errors <errors@example.org>"
	fpr, _ := gpgKey(t, home, uid, "ed25519", testPassphrase)
	armored := gpgExport(t, home, testPassphrase, "--export-secret-keys", "--armor", "="+uid)
	binary := gpgExport(t, home, testPassphrase, "--export-secret-keys", "="+uid)

	// A key with an encryption subkey: --export-secret-subkeys turns the
	// primary into a gnu-dummy stub.
	stubUID := "Stub <stub@example.org>"
	stubFpr, _ := gpgKey(t, home, stubUID, "ed25519", "")
	gpg(t, home, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-add-key", stubFpr, "cv25519", "encr", "never")
	stub := gpgExport(t, home, "", "--export-secret-subkeys", "--armor", "="+stubUID)
	// The same with GNU S2K mode 2 (divert-to-card) in place of mode 1
	// (gnu-dummy), as exported for a key on a smartcard.
	card := gpgExport(t, home, "", "--export-secret-subkeys", "="+stubUID)
	if i := bytes.Index(card, []byte("GNU\x01")); i < 0 {
		t.Fatal("no GNU S2K extension in the --export-secret-subkeys output")
	} else {
		card[i+3] = 2
	}

	dsaUID := "DSA <dsa@example.org>"
	gpgKey(t, home, dsaUID, "dsa2048", "")
	dsa := gpgExport(t, home, "", "--export-secret-keys", "="+dsaUID)

	for _, c := range []struct {
		name       string
		data       []byte
		passphrase string
		want       error
		msg        string
	}{
		{"wrong passphrase", armored, "wrong horse", ErrBadPassphrase, fpr},
		{"wrong passphrase binary", binary, "x", ErrBadPassphrase, fpr},
		{"no passphrase", armored, "", ErrPassphraseRequired, fpr},
		{"garbage", []byte("this is not a key\n"), "", ErrNotSecretKey, ""},
		{"empty", nil, "", ErrNotSecretKey, ""},
		{"truncated", binary[:len(binary)/2], testPassphrase, ErrNotSecretKey, ""},
		{"armored public key", gpgExport(t, home, "", "--export", "--armor", "="+uid), "", ErrNotSecretKey, "public key only"},
		{"binary public key", gpgExport(t, home, "", "--export", "="+uid), "", ErrNotSecretKey, "public key only"},
		{"gnu-dummy stub", stub, "", ErrStubKey, stubFpr},
		{"smartcard stub", card, "", ErrStubKey, stubFpr},
		{"DSA primary", dsa, "", ErrUnsupportedAlgorithm, "algorithm 17"},
		{"two keys", append(append([]byte(nil), binary...), dsa...), testPassphrase, ErrNotSecretKey, "more than one"},
	} {
		_, err := ParseSecretKey(c.data, []byte(c.passphrase))
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want %v naming %q", c.name, err, c.want, c.msg)
			continue
		}
		if c.passphrase != "" && strings.Contains(err.Error(), c.passphrase) {
			t.Errorf("%s: error %q contains the passphrase", c.name, err)
		}
		t.Logf("%s: %v", c.name, err)
	}

	// The right passphrase still works on the same data.
	if _, err := ParseSecretKey(armored, []byte(testPassphrase)); err != nil {
		t.Errorf("right passphrase: %v", err)
	}
	path := writeFile(t, t.TempDir(), "key.asc", armored)
	if _, err := ParseSecretKeyFile(path, nil); !errors.Is(err, ErrPassphraseRequired) || !strings.Contains(err.Error(), path) {
		t.Errorf("ParseSecretKeyFile error %v, want ErrPassphraseRequired naming %s", err, path)
	}
	if _, err := ParseSecretKeyFile(path+".missing", nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ParseSecretKeyFile of a missing file: %v", err)
	}
}
