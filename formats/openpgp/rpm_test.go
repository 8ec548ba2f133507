package openpgp

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// With helperEnv set, the test binary acts as rpmsign's "gpg": it signs its
// standard input with the PKCS #8 key in the file named by helperEnv (key
// created at helperCreatedEnv) and writes the binary signature to the file
// after -o.
const (
	helperEnv        = "SIGNET_OPENPGP_TEST_SIGN_KEY"
	helperCreatedEnv = "SIGNET_OPENPGP_TEST_SIGN_CREATED"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if err := signHelper(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "sign helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func signHelper(args []string) error {
	if len(args) != 3 || args[0] != "-o" || args[2] != "-" {
		return fmt.Errorf("usage: -o SIGFILE -, got %q", args)
	}
	der, err := os.ReadFile(os.Getenv(helperEnv))
	if err != nil {
		return err
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return err
	}
	secs, err := strconv.ParseInt(os.Getenv(helperCreatedEnv), 10, 64)
	if err != nil {
		return err
	}
	k, err := NewKey(priv.(crypto.Signer), time.Unix(secs, 0))
	if err != nil {
		return err
	}
	sig, err := k.SignReader(os.Stdin, BinarySignature, k.Hash(), time.Now())
	if err != nil {
		return err
	}
	return os.WriteFile(args[1], sig, 0o600)
}

// TestRPMSignatures has rpmsign sign a package through this package (as its
// gpg) and rpmkeys check the signature with the certificate from
// Certificate: the RPM header signature is a BinarySignature packet.
func TestRPMSignatures(t *testing.T) {
	for _, tool := range []string{"rpmbuild", "rpmsign", "rpmkeys"} {
		testenv.MustHave(t, tool)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spec := writeFile(t, dir, "t.spec", []byte("Name: signet-test\nVersion: 1\nRelease: 1\nSummary: test\nLicense: MIT\nBuildArch: noarch\n%description\ntest\n%files\n"))
	if out, err := exec.Command("rpmbuild", "--define", "_topdir "+filepath.Join(dir, "top"), "-bb", spec).CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	unsigned, err := os.ReadFile(filepath.Join(dir, "top/RPMS/noarch/signet-test-1-1.noarch.rpm"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range testSigners() {
		if !tc.rpm {
			continue // rpm 4.18 refuses ECDSA keys and signatures
		}
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k, err := NewKey(tc.signer, testCreated)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := k.ArmoredCertificate([]string{testUID}, testSigTime)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(tc.signer)
			if err != nil {
				t.Fatal(err)
			}
			pkg := writeFile(t, dir, "p.rpm", unsigned)
			sign := exec.Command("rpmsign", "--define", "_gpg_name signet",
				"--define", "__gpg_sign_cmd "+self+" gpg -o %{__signature_filename} %{__plaintext_filename}",
				"--addsign", pkg)
			sign.Env = append(os.Environ(), helperEnv+"="+writeFile(t, dir, "key.der", der),
				helperCreatedEnv+"="+strconv.FormatInt(testCreated.Unix(), 10))
			if out, err := sign.CombinedOutput(); err != nil {
				t.Fatalf("rpmsign --addsign: %v\n%s", err, out)
			}

			db := filepath.Join(dir, "db")
			check := func() (string, error) {
				out, err := exec.Command("rpmkeys", "--dbpath", db, "--checksig", "-v", pkg).CombinedOutput()
				return string(out), err
			}
			if out, err := check(); err == nil {
				t.Fatalf("rpmkeys --checksig passed without the key:\n%s", out)
			}
			if out, err := exec.Command("rpmkeys", "--dbpath", db, "--import", writeFile(t, dir, "key.asc", cert)).CombinedOutput(); err != nil {
				t.Fatalf("rpmkeys --import: %v\n%s", err, out)
			}
			out, err := check()
			if err != nil {
				t.Fatalf("rpmkeys --checksig: %v\n%s", err, out)
			}
			want := fmt.Sprintf("key ID %08x: OK", uint32(k.KeyID()))
			if !strings.Contains(out, want) {
				t.Errorf("rpmkeys --checksig output lacks %q:\n%s", want, out)
			}
			t.Logf("%s", out)
		})
	}
}
