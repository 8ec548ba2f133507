package hsm_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/signet-project/signet/hsm"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// TestDecrypt decrypts, in the token, a block that openssl encrypted to the
// key's public key, and refuses what cannot be decrypted.
func TestDecrypt(t *testing.T) {
	t.Parallel() // a token of its own
	tok := softhsmtest.New(t).Open(t)
	k, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.RSA2048, Label: "enc"})
	if err != nil {
		t.Fatal(err)
	}
	var _ crypto.Decrypter = k
	secret := []byte("a 32-byte session key, at random")

	dir := t.TempDir()
	pubPEM := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pubPEM, publicPEM(t, k.Public()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "in"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", pubPEM,
		"-pkeyopt", "rsa_padding_mode:pkcs1", "-in", filepath.Join(dir, "in")).Output()
	if err != nil {
		t.Fatalf("openssl pkeyutl -encrypt: %v", err)
	}
	//lint:ignore SA1019 the mode the token key serves
	got, err := k.Decrypt(rand.Reader, out, &rsa.PKCS1v15DecryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("decrypted %q, want %q", got, secret)
	}
	if got, err := k.Decrypt(nil, out, nil); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("nil options: %q, %v", got, err)
	}

	bad := bytes.Clone(out)
	bad[len(bad)/2] ^= 1
	if got, err := k.Decrypt(nil, bad, nil); err == nil {
		t.Errorf("a corrupted block decrypted to %q", got)
	}
	if _, err := k.Decrypt(nil, out, &rsa.OAEPOptions{Hash: crypto.SHA256}); !errors.Is(err, hsm.ErrUnsupported) {
		t.Errorf("OAEP: %v, want ErrUnsupported", err)
	}
	//lint:ignore SA1019 checking that this option is refused
	if _, err := k.Decrypt(nil, out, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); !errors.Is(err, hsm.ErrUnsupported) {
		t.Errorf("SessionKeyLen: %v, want ErrUnsupported", err)
	}
	ec, err := tok.GenerateKey(hsm.GenerateRequest{Type: hsm.ECDSAP256, Label: "ec"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Decrypt(nil, out, nil); !errors.Is(err, hsm.ErrUnsupported) {
		t.Errorf("ECDSA key: %v, want ErrUnsupported", err)
	}
}

func publicPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
