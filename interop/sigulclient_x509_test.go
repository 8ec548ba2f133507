package interop

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/signet-project/signet/internal/artifacts"
)

// testSignPE: sign-pe of Debian's shim, GRUB and kernel for amd64 and
// arm64 with the devstack's RSA and ECDSA signers; sbverify accepts each
// against the devstack's Secure Boot CA.
func (c *sc) testSignPE(t *testing.T) {
	needTools(t, "sbverify")
	efi := artifacts.EFIImages(t)
	chain := c.s.path("pki/sb-ca.pem")
	for _, arch := range []string{"amd64", "arm64"} {
		for _, img := range []string{"shim", "grub", "kernel"} {
			in := filepath.Join(efi, arch, img+".efi")
			out := c.path(arch + "-" + img + ".signed.efi")
			c.ok(t, c.alice(t, "sign-pe", "-o", out, "demo-sb", "signer", in), "sign-pe")
			tool(t, "", nil, "sbverify", "--cert", chain, out)
		}
	}
	// The ECDSA signer (sbverify checks the signature; the firmware tests
	// elsewhere show what UEFI makes of ECDSA).
	in := filepath.Join(efi, "amd64/grub.efi")
	out := c.path("grub-ec.signed.efi")
	c.ok(t, c.alice(t, "sign-pe", "-o", out, "demo-sb-ec", "signer", in), "sign-pe")
	tool(t, "", nil, "sbverify", "--cert", chain, out)
	// Not a PE file: refused, nothing written.
	notPE := c.write(t, "not-pe.efi", []byte("MZ but nothing after it"))
	fails(t, c.alice(t, "sign-pe", "-o", c.path("not-pe.signed.efi"), "demo-sb", "signer", notPE), "sign-pe of a non-PE file", "Error")
	if _, err := os.Stat(c.path("not-pe.signed.efi")); err == nil {
		t.Fatal("a refused sign-pe left its output behind")
	}
}
