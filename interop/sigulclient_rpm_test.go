package interop

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/artifacts"
)

// testSignRPM: sign-rpm of one local package, to a new file and in place;
// rpmkeys accepts the signature with demo-rsa's public key only.
func (c *sc) testSignRPM(t *testing.T) {
	db := c.rpmDB(t, "demo-rsa")
	src := filepath.Join(artifacts.RPMUtilsTestdata(t), "one-epoch-0.1-1.x86_64.rpm")
	out := c.path("one-epoch-signed.rpm")
	c.ok(t, c.alice(t, "sign-rpm", "-o", out, "demo-rsa", src), "sign-rpm")
	checkRPMSignature(t, db, out)
	sameContent(t, src, out)

	// Without -o, the client replaces its input.
	inPlace := c.write(t, "zero-epoch-0.1-1.x86_64.rpm", read(t, filepath.Join(artifacts.RPMUtilsTestdata(t), "zero-epoch-0.1-1.x86_64.rpm")))
	c.ok(t, c.alice(t, "sign-rpm", "demo-rsa", inPlace), "sign-rpm")
	checkRPMSignature(t, db, inPlace)

	// --v3-signature: a header+payload signature besides the header one.
	v3 := c.path("one-epoch-v3.rpm")
	c.ok(t, c.alice(t, "sign-rpm", "--v3-signature", "-o", v3, "demo-rsa", src), "sign-rpm")
	checkRPMSignature(t, db, v3)
	if out := tool(t, "", nil, "rpmkeys", "--dbpath", db, "--checksig", "-v", v3); !strings.Contains(out, "\n    V4 RSA/SHA256 Signature, key ID") {
		t.Errorf("sign-rpm --v3-signature: rpmkeys sees no header+payload signature:\n%s", out)
	}

	// A corrupt package is refused with Sigul's error text; nothing is
	// written.
	bad := c.write(t, "truncated.rpm", read(t, src)[:3000])
	fails(t, c.alice(t, "sign-rpm", "-o", c.path("truncated-signed.rpm"), "demo-rsa", bad), "sign-rpm of a truncated package", "The RPM file is corrupt")
	if _, err := os.Stat(c.path("truncated-signed.rpm")); err == nil {
		t.Fatal("a refused sign-rpm left its output behind")
	}
}

// testBatchCorrupt: sign-rpms with corrupt packages in the middle of the
// batch. Each is refused (CORRUPT_RPM, "The RPM file is corrupt"), and
// every good package before and after it is signed: the unmodified
// client keeps verifying sub-replies after an error (issue 10 item 1,
// PROTOCOL-v1.md §7.9 item 6).
func (c *sc) testBatchCorrupt(t *testing.T) {
	db := c.rpmDB(t, "demo-rsa")
	good := rpmUtilsPackages(t, false)
	first := read(t, good[0])
	truncated := c.write(t, "truncated-0.1-1.x86_64.rpm", first[:len(first)/2])
	garbage := c.write(t, "garbage-0.1-1.x86_64.rpm", bytes.Repeat([]byte("not an rpm "), 700))
	args := []string{"sign-rpms", "-o", c.path("batch"), "demo-rsa"}
	args = append(args, good[:3]...)
	args = append(args, truncated)
	args = append(args, good[3:6]...)
	args = append(args, garbage)
	args = append(args, good[6:]...)
	r := c.alice(t, args...)
	if r.code == 0 {
		t.Fatalf("sign-rpms with corrupt packages exited 0: %v", r)
	}
	var problems []string
	for _, p := range []string{truncated, garbage} {
		if !strings.Contains(r.stderr, "Error signing "+p+": The RPM file is corrupt") {
			problems = append(problems, "no CORRUPT_RPM error for "+filepath.Base(p))
		}
		if _, err := os.Stat(filepath.Join(c.path("batch"), filepath.Base(p))); err == nil {
			problems = append(problems, "a signed copy of corrupt "+filepath.Base(p))
		}
	}
	for _, bad := range []string{"No reply from server received", "authentication failed", "Traceback"} {
		if strings.Contains(r.stderr, bad) {
			problems = append(problems, "the client reports "+strconv.Quote(bad))
		}
	}
	if len(problems) > 0 {
		t.Errorf("sign-rpms with corrupt packages: %s; %v", strings.Join(problems, "; "), r)
	}
	for _, p := range good {
		out := filepath.Join(c.path("batch"), filepath.Base(p))
		if _, err := os.Stat(out); err != nil {
			t.Errorf("sign-rpms: good package %s was not signed: %v", filepath.Base(p), err)
			continue
		}
		checkRPMSignature(t, db, out)
		sameContent(t, p, out)
	}
	if t.Failed() {
		return
	}
	// The same batch without the corrupt packages succeeds as a whole.
	c.ok(t, c.alice(t, append([]string{"sign-rpms", "-o", c.path("batch-good"), "demo-rsa"}, good...)...), "sign-rpms")
	for _, p := range good {
		checkRPMSignature(t, db, filepath.Join(c.path("batch-good"), filepath.Base(p)))
	}
}

// testHeadSigning: sign-rpms --head-signing with local files. Sigul's
// client sends each whole package (MACed whole) and splices the returned
// signature header into its local copy (issue 10 item 2): every package,
// from go-rpmutils' test set (every payload compression) to a 4 MiB one,
// comes back with a signature rpmkeys accepts and its main header and
// payload unchanged.
func (c *sc) testHeadSigning(t *testing.T) {
	db := c.rpmDB(t, "demo-rsa")
	pkgs := append(rpmUtilsPackages(t, true), bigRPM(t))
	out := c.path("head")
	c.ok(t, c.alice(t, append([]string{"sign-rpms", "--head-signing", "-o", out, "demo-rsa"}, pkgs...)...), "sign-rpms")
	for _, p := range pkgs {
		signed := filepath.Join(out, filepath.Base(p))
		checkRPMSignature(t, db, signed)
		sameContent(t, p, signed)
	}
}

// rpmUtilsPackages returns go-rpmutils' test packages; withDigest leaves
// out those without a payload digest (built by rpm < 4.14).
func rpmUtilsPackages(t testing.TB, withDigest bool) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(artifacts.RPMUtilsTestdata(t), "*.rpm"))
	if err != nil || len(all) < 8 {
		t.Fatalf("go-rpmutils' test packages: %v %v", all, err)
	}
	if !withDigest {
		return all
	}
	needTools(t, "rpm")
	var with []string
	for _, p := range all {
		if d := strings.TrimSpace(tool(t, "", nil, "rpm", "-qp", "--nosignature", "--qf", "%{PAYLOADDIGEST}", p)); d != "" && d != "(none)" {
			with = append(with, p)
		}
	}
	if len(with) < 7 {
		t.Fatalf("only %d of go-rpmutils' packages have a payload digest", len(with))
	}
	return with
}

// bigRPM builds (with rpmbuild) a noarch package of 4 MiB of random data,
// stored uncompressed.
func bigRPM(t testing.TB) string {
	t.Helper()
	needTools(t, "rpmbuild")
	dir := t.TempDir()
	spec := filepath.Join(dir, "signet-big.spec")
	os.WriteFile(spec, []byte(`Name: signet-big
Version: 1
Release: 1
Summary: 4 MiB of random data
License: MIT
BuildArch: noarch
%description
A package as large as real ones, for head signing.
%install
mkdir -p %{buildroot}/usr/share/signet-big
head -c 4194304 /dev/urandom > %{buildroot}/usr/share/signet-big/data
%files
/usr/share/signet-big
`), 0o644)
	tool(t, dir, nil, "rpmbuild", "--define", "_topdir "+filepath.Join(dir, "top"), "--define", "_binary_payload w.ufdio", "-bb", spec)
	p := filepath.Join(dir, "top/RPMS/noarch/signet-big-1-1.noarch.rpm")
	if fi, err := os.Stat(p); err != nil || fi.Size() < 4<<20 {
		t.Fatalf("rpmbuild made no 4 MiB package: %v %v", fi, err)
	}
	return p
}

// rpmDB makes an rpm database holding key's public key, fetched with
// Sigul's client.
func (c *sc) rpmDB(t testing.TB, key string) string {
	t.Helper()
	needTools(t, "rpmkeys")
	pub := c.ok(t, c.alice(t, "get-public-key", key), "get-public-key").stdout
	db := t.TempDir()
	tool(t, "", nil, "rpmkeys", "--dbpath", db, "--import", c.write(t, key+"-rpm.asc", []byte(pub)))
	return db
}

// checkRPMSignature fails the test unless rpmkeys, with the key in db
// only, finds a valid signature (not just digests) on the package.
func checkRPMSignature(t testing.TB, db, path string) {
	t.Helper()
	r := execute(t, "", nil, nil, "rpmkeys", "--dbpath", db, "--define", "_pkgverify_level signature", "--checksig", "-v", path)
	if r.code != 0 || !strings.Contains(r.stdout, "Signature, key ID") || strings.Contains(r.stdout, "NOT OK") || strings.Contains(r.stdout, "NOKEY") {
		t.Errorf("rpmkeys --checksig %s: %v", filepath.Base(path), r)
	}
}

// sameContent fails the test unless signed has the lead, main header and
// payload of orig: signing changed the signature header only.
func sameContent(t testing.TB, orig, signed string) {
	t.Helper()
	a, b := read(t, orig), read(t, signed)
	ha, hb := mainHeaderOffset(t, a), mainHeaderOffset(t, b)
	if !bytes.Equal(a[:96], b[:96]) || !bytes.Equal(a[ha:], b[hb:]) {
		t.Errorf("%s: signing changed more than the signature header", filepath.Base(signed))
	}
}

// mainHeaderOffset returns where an RPM's main header starts: after the
// 96-byte lead and the signature header, padded to 8 bytes.
func mainHeaderOffset(t testing.TB, p []byte) int {
	t.Helper()
	if len(p) < 112 || !bytes.Equal(p[96:100], []byte{0x8e, 0xad, 0xe8, 0x01}) {
		t.Fatal("not an RPM: no signature header after the lead")
	}
	n := 16 + 16*int(binary.BigEndian.Uint32(p[104:])) + int(binary.BigEndian.Uint32(p[108:]))
	off := 96 + (n+7)&^7
	if off > len(p) {
		t.Fatal("not an RPM: signature header runs past the end")
	}
	return off
}

// testFileSigning: sign-rpms --file-signing-key (and sign-rpm) with the
// devstack's ECDSA key demo-ima, its passphrase asked for second as
// Sigul's client does: every regular file of the package gets an IMA
// signature that evmctl ima_verify accepts for the file extracted from
// the payload, with a certificate for demo-ima made by sign-certificate;
// rpmkeys still accepts the package signature. In head mode too.
func (c *sc) testFileSigning(t *testing.T) {
	needTools(t, "evmctl", "rpm", "rpm2cpio", "cpio", "openssl")
	db := c.rpmDB(t, "demo-rsa")
	pem := c.ok(t, c.alice(t, "sign-certificate", "--certificate-type", "ca", "--validity", "1y",
		"--subject-certificate-name", "imaverify", "--subject-common-name", "IMA demo", "demo-ima", "demo-ima"), "sign-certificate").stdout
	cert := c.path("ima.der")
	tool(t, "", nil, "openssl", "x509", "-in", c.write(t, "ima.pem", []byte(pem)), "-outform", "DER", "-out", cert)

	pkg := bigRPM(t)
	two := []string{c.s.alicePass, c.s.alicePass}
	for _, mode := range [][]string{nil, {"--head-signing"}} {
		out := c.path("ima" + strings.Join(mode, ""))
		args := append(append([]string{"sign-rpms"}, mode...), "--file-signing-key", "demo-ima", "-o", out, "demo-rsa", pkg)
		c.ok(t, c.run(t, "", "alice", two, args...), args...)
		signed := filepath.Join(out, filepath.Base(pkg))
		checkRPMSignature(t, db, signed)
		sameContent(t, pkg, signed)
		checkIMA(t, signed, cert)
	}
	one := c.path("ima-one.rpm")
	c.ok(t, c.run(t, "", "alice", two, "sign-rpm", "--file-signing-key", "demo-ima", "-o", one, "demo-rsa", pkg), "sign-rpm")
	checkRPMSignature(t, db, one)
	checkIMA(t, one, cert)
}

// checkIMA extracts the package's payload and has evmctl verify each
// regular file against its IMA signature (FILESIGNATURES) with cert.
func checkIMA(t testing.TB, pkg, cert string) {
	t.Helper()
	q := tool(t, "", nil, "rpm", "-qp", "--nosignature", "--qf", "[%{FILEMODES:perms} %{FILENAMES} %{FILESIGNATURES}\n]", pkg)
	dir := t.TempDir()
	archive := execute(t, "", nil, nil, "rpm2cpio", pkg)
	if archive.code != 0 {
		t.Fatalf("rpm2cpio: %v", archive)
	}
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(archive.stdout)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	files := 0
	for _, l := range strings.Split(strings.TrimSpace(q), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[0], "-") {
			continue // directories, links: no signature
		}
		files++
		if len(f) != 3 {
			t.Errorf("%s: regular file %s has no IMA signature", filepath.Base(pkg), f[1])
			continue
		}
		raw, err := hex.DecodeString(f[2])
		if err != nil {
			t.Fatalf("%s: IMA signature %q: %v", f[1], f[2], err)
		}
		path := filepath.Join(dir, f[1])
		if err := os.WriteFile(path+".sig", raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if out := tool(t, "", nil, "evmctl", "-v", "ima_verify", "--sigfile", "--key", cert, path); !strings.Contains(out, "verification is OK") {
			t.Errorf("evmctl ima_verify %s:\n%s", f[1], out)
		}
	}
	if files == 0 {
		t.Fatalf("%s: no regular files in %q", filepath.Base(pkg), q)
	}
}
