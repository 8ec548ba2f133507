package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/artifacts"
)

// testCertificates: sign-certificate with Sigul's option names (a CA from
// the --subject-* options, then a code-signing certificate it issues from
// -s, both with the same --validity as a Sigul script gives them), checked
// by openssl; then sign-pe with the new certificate, checked by sbverify
// against the new CA.
func (c *sc) testCertificates(t *testing.T) {
	needTools(t, "openssl", "sbverify")
	ca := c.ok(t, c.alice(t, "sign-certificate", "--certificate-type", "ca", "--validity", "5y",
		"--subject-certificate-name", "interopca", "--subject-common-name", "Interop CA", "--subject-organizational-unit", "Release Engineering",
		"demo-sb-ca", "demo-sb-ca"), "sign-certificate").stdout
	caFile := c.write(t, "interop-ca.pem", []byte(ca))
	text := tool(t, "", nil, "openssl", "x509", "-in", caFile, "-noout", "-text", "-nameopt", "RFC2253")
	for _, want := range []string{"CN=Interop CA", "OU=Release Engineering", "CA:TRUE", "Certificate Sign"} {
		if !strings.Contains(text, want) {
			t.Fatalf("sign-certificate --certificate-type ca: openssl does not show %q:\n%s", want, text)
		}
	}
	tool(t, "", nil, "openssl", "verify", "-x509_strict", "-CAfile", caFile, caFile)

	signer := c.ok(t, c.alice(t, "sign-certificate", "--certificate-type", "codesigning", "--validity", "5y",
		"--issuer-certificate-name", "interopca", "--subject-certificate-name", "interopsigner", "-s", "CN=Interop signer,O=signet interop",
		"demo-sb-ca", "demo-sb"), "sign-certificate").stdout
	signerFile := c.write(t, "interop-signer.pem", []byte(signer))
	text = tool(t, "", nil, "openssl", "x509", "-in", signerFile, "-noout", "-text", "-nameopt", "RFC2253")
	for _, want := range []string{"Subject: CN=Interop signer,O=signet interop", "Code Signing", "CA:FALSE"} {
		if !strings.Contains(text, want) {
			t.Fatalf("sign-certificate --certificate-type codesigning: openssl does not show %q:\n%s", want, text)
		}
	}
	tool(t, "", nil, "openssl", "verify", "-x509_strict", "-CAfile", caFile, signerFile)

	// Sigul's rules: a subject certificate name that exists is refused, and
	// one that is not letters only is too.
	fails(t, c.alice(t, "sign-certificate", "--certificate-type", "codesigning", "--validity", "1y",
		"--issuer-certificate-name", "interopca", "--subject-certificate-name", "interopsigner", "-s", "CN=again",
		"demo-sb-ca", "demo-sb"), "sign-certificate with an existing name", "")

	// sign-pe with the new certificate: sbverify accepts it against the new
	// CA only.
	img := filepath.Join(artifacts.EFIImages(t), "amd64/grub.efi")
	out := c.path("grub-interop.efi")
	c.ok(t, c.alice(t, "sign-pe", "-o", out, "demo-sb", "interopsigner", img), "sign-pe")
	tool(t, "", nil, "sbverify", "--cert", caFile, out)
	if r := execute(t, "", nil, nil, "sbverify", "--cert", c.s.path("pki/sb-ca.pem"), out); r.code == 0 {
		t.Fatalf("sbverify accepted the image against another CA: %v", r)
	}
}

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

// testBindingMethods: list-binding-methods (answered by the client) and
// list-server-binding-methods (asked of signet's server) both work; with
// no binding method enabled in the configuration, the client lists none.
func (c *sc) testBindingMethods(t *testing.T) {
	r := c.ok(t, c.alice(t, "list-binding-methods"), "list-binding-methods")
	if strings.TrimSpace(r.stdout) != "" {
		t.Errorf("list-binding-methods with [binding] enabled: empty listed %q", r.stdout)
	}
	c.ok(t, c.admin(t, "list-server-binding-methods"), "list-server-binding-methods")
}
