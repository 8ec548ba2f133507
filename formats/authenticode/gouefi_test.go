package authenticode

import (
	"bytes"
	"crypto"
	"path/filepath"
	"strings"
	"testing"

	uefi "github.com/foxboron/go-uefi/authenticode"
)

// TestGoUEFIAgrees cross-checks with another implementation, go-uefi's
// authenticode package: its image hash equals Digest on Debian's six real
// images (four under -short: no kernels), and it verifies our RSA signature
// over each.
func TestGoUEFIAgrees(t *testing.T) {
	dir := efiDir(t)
	p := newPKI(t, t.TempDir(), "gouefi", rsa2048)
	for _, img := range images() {
		arch, name := filepath.Dir(img), strings.TrimSuffix(filepath.Base(img), ".efi")
		in := filepath.Join(dir, arch, name+".efi")
		ref, err := uefi.Parse(bytes.NewReader(readFile(t, in)))
		if err != nil {
			t.Fatalf("go-uefi Parse %s/%s: %v", arch, name, err)
		}
		ours := mustDigest(t, parseFile(t, in))
		if got := ref.Hash(crypto.SHA256); !bytes.Equal(got, ours) {
			t.Errorf("%s/%s: go-uefi hash %x, Digest %x", arch, name, got, ours)
		}
		out := filepath.Join(t.TempDir(), name+".signed")
		signFile(t, in, out, p, SignOptions{})
		signed, err := uefi.Parse(bytes.NewReader(readFile(t, out)))
		if err != nil {
			t.Fatalf("go-uefi Parse of our %s/%s: %v", arch, name, err)
		}
		if ok, err := signed.Verify(p.leaf); !ok || err != nil {
			t.Errorf("%s/%s: go-uefi Verify = %v, %v", arch, name, ok, err)
		}
	}
}
