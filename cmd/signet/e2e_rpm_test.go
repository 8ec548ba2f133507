package main

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/testenv"
)

// copyRPMs copies the test packages into dir/name, writable, and returns
// their base names.
func copyRPMs(t *testing.T, src, dir string) []string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(src, "*.rpm"))
	if len(paths) < 8 {
		t.Fatalf("only %d RPMs in %s", len(paths), src)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(p))
	}
	return names
}

// checksig requires rpmkeys --checksig -v to accept pkg with the keys in
// the database db, and its report to contain each of want.
func checksig(t *testing.T, db, pkg string, want ...string) string {
	t.Helper()
	out, err := exec.Command("rpmkeys", "--dbpath", db, "--checksig", "-v", pkg).CombinedOutput()
	if err != nil || strings.Contains(string(out), "NOT OK") {
		t.Fatalf("rpmkeys --checksig -v %s: %v\n%s", filepath.Base(pkg), err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Fatalf("rpmkeys --checksig -v %s does not say %q:\n%s", filepath.Base(pkg), w, out)
		}
	}
	return string(out)
}

var keyIDLine = regexp.MustCompile(`Header V4 (RSA|EdDSA)/SHA256 Signature, key ID ([0-9a-f]+): OK`)

// testRPMs: sign-rpm and sign-rpms through client, bridge and server, on
// real packages, checked by rpmkeys (and evmctl for IMA signatures).
func testRPMs(t *testing.T, s *stack) {
	src := artifacts.RPMUtilsTestdata(t)
	names := copyRPMs(t, src, s.path("rpms"))
	db := s.path("rpmdb")
	os.MkdirAll(db, 0o755)
	keyIDs := map[string]string{}
	for _, k := range []string{"demo-rsa", "demo-ed25519"} {
		os.WriteFile(s.path(k+".asc"), s.publicKey(t, k), 0o644)
		testenv.Run(t, s.dir, nil, "rpmkeys", "--dbpath", db, "--import", s.path(k+".asc"))
	}
	var inputs []string
	for _, n := range names {
		inputs = append(inputs, "rpms/"+n)
	}

	// Whole packages, RSA-4096, one connection for all of them.
	os.Mkdir(s.path("signed-rsa"), 0o755)
	s.ok(t, s.alice(t, append([]string{"sign-rpms", "-o", "signed-rsa", "demo-rsa"}, inputs...)...), "sign-rpms demo-rsa")
	for _, n := range names {
		want := []string{"Header V4 RSA/SHA256 Signature", "Header SHA256 digest: OK", "Payload SHA256 digest: OK"}
		if n == "simple-1.0.1-1.i386.rpm" {
			// An old package: SHA-1 header digest, no payload digest, so
			// it gets a header+payload signature too.
			want = []string{"Header V4 RSA/SHA256 Signature", "Header SHA1 digest: OK", "    V4 RSA/SHA256 Signature", "MD5 digest: OK"}
		}
		out := checksig(t, db, s.path("signed-rsa/"+n), want...)
		keyIDs["demo-rsa"] = keyIDLine.FindStringSubmatch(out)[2]
	}

	// Head signing with Ed25519: only the headers travel. The old
	// simple-1.0.1 package has no payload digest, so its header signature
	// cannot cover its payload: it travels whole in the same batch (-v
	// says so) and gets a header+payload signature too.
	os.Mkdir(s.path("signed-ed"), 0o755)
	r := s.alice(t, append([]string{"-v", "sign-rpms", "--head-signing", "-o", "signed-ed", "demo-ed25519"}, inputs...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "sending the whole package") || !strings.Contains(r.stderr, "rpm=rpms/simple-1.0.1-1.i386.rpm") {
		t.Fatalf("sign-rpms --head-signing: exit %d\n%s", r.code, r.stderr)
	}
	for _, n := range names {
		want := []string{"Header V4 EdDSA/SHA256 Signature", "Payload SHA256 digest: OK"}
		if n == "simple-1.0.1-1.i386.rpm" {
			want = []string{"Header V4 EdDSA/SHA256 Signature", "    V4 EdDSA/SHA256 Signature", "MD5 digest: OK"}
		}
		out := checksig(t, db, s.path("signed-ed/"+n), want...)
		keyIDs["demo-ed25519"] = keyIDLine.FindStringSubmatch(out)[2]
	}

	// Failover: the configuration lists a bridge where nothing listens
	// first, then the real one; the client moves on and signs the batch.
	conf, err := os.ReadFile(s.path("alice.toml"))
	if err != nil {
		t.Fatal(err)
	}
	port := regexp.MustCompile(`(?m)^bridge-port = (\d+)$`).FindSubmatch(conf)
	if port == nil {
		t.Fatalf("alice.toml has no bridge-port line:\n%s", conf)
	}
	dead := strconv.Itoa(testenv.FreePorts(t, 1)[0])
	conf = bytes.Replace(conf, port[0], []byte("bridge-port = "+dead+"\nbridges = [\"localhost:"+string(port[1])+"\"]"), 1)
	os.WriteFile(s.path("alice-failover.toml"), conf, 0o600)
	os.Mkdir(s.path("failover"), 0o755)
	r = s.signet(t, "alice-failover", []string{s.alicePass}, append([]string{"-v", "sign-rpms", "--head-signing", "-o", "failover", "demo-ed25519"}, inputs...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "localhost:"+dead) {
		t.Fatalf("sign-rpms through the second bridge: exit %d, want 0 and a word on the first bridge\n%s", r.code, r.stderr)
	}
	for _, n := range names {
		checksig(t, db, s.path("failover/"+n), "Header V4 EdDSA/SHA256 Signature")
	}

	// A package already signed by another key: re-signing replaces the
	// Ed25519 signature by the RSA one, with head signing, in place.
	resigned := s.path("resigned")
	os.Mkdir(resigned, 0o755)
	s.ok(t, s.alice(t, "sign-rpms", "--head-signing", "-o", "resigned", "demo-rsa", "signed-ed/zero-epoch-0.1-1.x86_64.rpm"), "re-sign")
	out := checksig(t, db, filepath.Join(resigned, "zero-epoch-0.1-1.x86_64.rpm"), "Header V4 RSA/SHA256 Signature, key ID "+keyIDs["demo-rsa"])
	if strings.Contains(out, "EdDSA") {
		t.Fatalf("the old signature survived re-signing:\n%s", out)
	}
	// rpmsign's rule: the reserved space absorbs the signature, so the
	// package keeps its size.
	a, _ := os.Stat(s.path("rpms/zero-epoch-0.1-1.x86_64.rpm"))
	b, _ := os.Stat(filepath.Join(resigned, "zero-epoch-0.1-1.x86_64.rpm"))
	if a.Size() != b.Size() {
		t.Errorf("signed package is %d bytes, the original %d", b.Size(), a.Size())
	}

	// sign-rpm with a header+payload (v3) signature, replacing the input.
	s.ok(t, s.alice(t, "sign-rpm", "--v3-signature", "demo-rsa", "rpms/simple-1.0.1-1.i386.rpm"), "sign-rpm --v3-signature")
	checksig(t, db, s.path("rpms/simple-1.0.1-1.i386.rpm"), "Header V4 RSA/SHA256 Signature", "    V4 RSA/SHA256 Signature, key ID "+keyIDs["demo-rsa"]+": OK", "MD5 digest: OK")
	s.fails(t, s.alice(t, "sign-rpms", "--head-signing", "--v3-signature", "-o", "signed-ed", "demo-rsa", "rpms/empty-0.1-1.x86_64.rpm"), "--v3-signature with --head-signing", "cannot be combined")

	// One flipped payload byte: CORRUPT_RPM, nothing written, and the
	// other package of the batch is signed.
	pkg, _ := os.ReadFile(s.path("rpms/payload-test-0.1-w9.gzdio.x86_64.rpm"))
	pkg[len(pkg)-100] ^= 0x40
	os.WriteFile(s.path("corrupt.rpm"), pkg, 0o644)
	s.fails(t, s.alice(t, "sign-rpm", "-o", "corrupt-signed.rpm", "demo-rsa", "corrupt.rpm"), "sign-rpm of a corrupt package", "CORRUPT_RPM")
	s.absent(t, "corrupt-signed.rpm")
	os.Mkdir(s.path("mixed"), 0o755)
	r = s.alice(t, "sign-rpms", "-o", "mixed", "demo-rsa", "corrupt.rpm", "rpms/empty-0.1-1.x86_64.rpm")
	if r.code != 1 || !strings.Contains(r.stderr, "Error signing corrupt.rpm: The RPM file is corrupt (CORRUPT_RPM)") {
		t.Fatalf("sign-rpms with a corrupt package: exit %d\n%s", r.code, r.stderr)
	}
	s.absent(t, "mixed/corrupt.rpm")
	checksig(t, db, s.path("mixed/empty-0.1-1.x86_64.rpm"))
	// Not an RPM at all: refused locally, by name.
	os.WriteFile(s.path("not.rpm"), []byte("\x1f\x8b\x08 not an rpm"), 0o644)
	s.fails(t, s.alice(t, "sign-rpm", "-o", "not-signed.rpm", "demo-rsa", "not.rpm"), "sign-rpm of a gzip file", "not.rpm")

	// IMA file signatures with an ECC key in the token, checked by
	// evmctl against the files of the payload, with a certificate for
	// the IMA key made by sign-certificate.
	s.ok(t, s.alice(t, "sign-certificate", "--issuer-certificate", "ca", "--subject-certificate", "ima",
		"--subject", "CN=signet devstack IMA", "-o", "ima.pem", "demo-sb-ca", "demo-ima"), "sign-certificate for demo-ima")
	testenv.Run(t, s.dir, nil, "openssl", "x509", "-in", "ima.pem", "-outform", "der", "-out", "ima.der")
	os.Mkdir(s.path("ima"), 0o755)
	s.ok(t, s.signet(t, "alice", []string{s.alicePass, s.alicePass}, "sign-rpms", "--head-signing", "--file-signing-key", "demo-ima",
		"-o", "ima", "demo-rsa", "rpms/payload-test-0.1-w9.gzdio.x86_64.rpm"), "sign-rpms --file-signing-key")
	signedIMA := s.path("ima/payload-test-0.1-w9.gzdio.x86_64.rpm")
	checksig(t, db, signedIMA, "Header V4 RSA/SHA256 Signature")
	checkIMA(t, s, db, signedIMA, s.path("ima.der"))
	// A wrong passphrase for the file-signing key fails the whole batch.
	s.fails(t, s.signet(t, "alice", []string{s.alicePass, "wrong"}, "sign-rpms", "--file-signing-key", "demo-ima",
		"-o", "ima", "demo-rsa", "rpms/empty-0.1-1.x86_64.rpm"), "wrong file-signing passphrase", "AUTHENTICATION_FAILED")

	// The audit log names each package signed.
	audit := exec.Command(filepath.Join(s.dir, "bin/signet-server"), "--config", s.path("server.toml"), "audit", "show")
	audit.Env = append(s.env, "SOFTHSM2_CONF="+s.path("token/softhsm2.conf"))
	log, err := audit.CombinedOutput()
	if err != nil {
		t.Fatalf("audit show: %v\n%s", err, log)
	}
	for _, want := range []string{"nevra=zero-epoch-0:0.1-1.x86_64", "nevra=payload-test-0.1-w9.gzdio.x86_64", "header-sha256="} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("the audit log does not mention %q", want)
		}
	}
}

// checkIMA requires every file signature in pkg to be accepted by evmctl
// ima_verify, with the certificate der, on the file itself extracted from
// the package's payload (rpm2cpio | cpio), and at least one to be there.
func checkIMA(t *testing.T, s *stack, db, pkg, der string) {
	t.Helper()
	q := testenv.Run(t, s.dir, nil, "rpm", "--dbpath", db, "-qp", "--qf", "[%{FILENAMES}\t%{FILESIGNATURES}\n]", pkg)
	root, err := os.MkdirTemp(s.dir, "ima-root-")
	if err != nil {
		t.Fatal(err)
	}
	cpio := exec.Command("sh", "-c", "rpm2cpio \"$0\" | cpio -idm --quiet", pkg)
	cpio.Dir = root
	if out, err := cpio.CombinedOutput(); err != nil {
		t.Fatalf("rpm2cpio | cpio: %v\n%s", err, out)
	}
	verified := 0
	for _, line := range strings.Split(strings.TrimSpace(q), "\n") {
		name, sig, _ := strings.Cut(line, "\t")
		if sig == "" {
			continue
		}
		raw, err := hex.DecodeString(sig)
		if err != nil {
			t.Fatalf("%s: signature %q", name, sig)
		}
		path := filepath.Join(root, name)
		os.WriteFile(path+".sig", raw, 0o644)
		if out := testenv.Run(t, s.dir, nil, "evmctl", "-v", "ima_verify", "--sigfile", "--key", der, path); !strings.Contains(out, "verification is OK") {
			t.Fatalf("evmctl ima_verify %s:\n%s", name, out)
		}
		verified++
	}
	if verified == 0 {
		t.Fatalf("no file signature to verify in %s:\n%s", filepath.Base(pkg), q)
	}
}
