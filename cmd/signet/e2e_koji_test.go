package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/koji"
	"github.com/signet-project/signet/internal/kojitest"
	"github.com/signet-project/signet/internal/testenv"
)

// kojiPackages are go-rpmutils' test packages imported into the hub as
// builds of their own.
var kojiPackages = []string{
	"zero-epoch-0.1-1.x86_64.rpm",
	"one-epoch-0.1-1.x86_64.rpm",
	"empty-0.1-1.x86_64.rpm",
	"payload-test-0.1-w9.gzdio.x86_64.rpm",
	"payload-test-0.1-w6.xzdio.x86_64.rpm",
	"simple-1.0.1-1.i386.rpm",
}

// kojiStack is a devstack whose bridge and clients have the Koji
// instance "koji", a real hub (kojitest, koji-stack.sh), the packages
// imported there, and a session of the hub's signer to check what the
// bridge stored.
type kojiStack struct {
	*stack
	hub    *kojitest.Hub
	signer *koji.Client
	// nvras are kojiPackages' N-V-R.A, in that order.
	nvras []string
	db    string // rpmdb with the devstack's OpenPGP keys
}

func startKojiStack(t *testing.T) *kojiStack {
	t.Helper()
	hub := kojitest.Start(t, kojitest.Options{})
	testenv.MustHave(t, "rpm", "rpmkeys", "gpg", "evmctl", "rpm2cpio", "cpio", "openssl")
	src := artifacts.RPMUtilsTestdata(t)
	k := &kojiStack{hub: hub}
	for _, p := range kojiPackages {
		path := filepath.Join(src, p)
		hub.ImportRPM(t, path)
		k.nvras = append(k.nvras, rpmQuery(t, path, "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}"))
	}
	// The bridge logs in as "bridge" on behalf of the requesting user
	// (the client certificate's CN), who must exist and may sign.
	hub.AddUser(t, "alice", "sign")
	k.stack = startStack(t, "SIGNET_KOJI_HUB="+hub.URL, "SIGNET_KOJI_TOPURL="+hub.TopURL,
		"SIGNET_KOJI_CERT="+hub.Cert("bridge"), "SIGNET_KOJI_CA="+hub.CA)
	k.signer = hub.Client(t, "signer")
	if err := k.signer.SSLLogin(kctx(t), ""); err != nil {
		t.Fatalf("signer's login to the hub: %v", err)
	}
	k.db = k.path("rpmdb")
	os.MkdirAll(k.db, 0o755)
	for _, key := range []string{"demo-rsa", "demo-ed25519"} {
		os.WriteFile(k.path(key+".asc"), k.publicKey(t, key), 0o644)
		testenv.Run(t, k.dir, nil, "rpmkeys", "--dbpath", k.db, "--import", k.path(key+".asc"))
	}
	return k
}

func kctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func rpmQuery(t *testing.T, path, format string) string {
	t.Helper()
	out, err := exec.Command("rpm", "-qp", "--nosignature", "--nodigest", "--qf", format, path).Output()
	if err != nil {
		t.Fatalf("rpm -qp %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

var gpgKeyID = regexp.MustCompile(`(?m)^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):`)

// sigkey is Koji's sigkey for a devstack OpenPGP key: the low 32 bits of
// its key ID in lower-case hex, read from the exported key by gpg.
func (k *kojiStack) sigkey(t *testing.T, key string) string {
	t.Helper()
	out := testenv.Run(t, k.dir, nil, "gpg", "--batch", "--with-colons", "--show-keys", k.path(key+".asc"))
	m := gpgKeyID.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("gpg --show-keys %s.asc names no key ID:\n%s", key, out)
	}
	return strings.ToLower(m[1][8:])
}

// signedCopy checks that Koji lists sigkey's signature of nvra
// (queryRPMSigs), has the hub write the signed copy (writeSignedRPM, as
// signer), downloads it from the topurl and returns its path.
func (k *kojiStack) signedCopy(t *testing.T, nvra, sigkey string) string {
	t.Helper()
	ctx := kctx(t)
	r, err := k.signer.GetRPM(ctx, nvra)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := k.signer.QueryRPMSigs(ctx, r.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	var keys []string
	for _, s := range sigs {
		keys = append(keys, s.SigKey)
		found = found || s.SigKey == sigkey
	}
	if !found {
		t.Fatalf("queryRPMSigs(%s) lists sigkeys %q, not %s", nvra, keys, sigkey)
	}
	if err := k.signer.WriteSignedRPM(ctx, r.ID, sigkey); err != nil {
		t.Fatalf("writeSignedRPM(%s, %s): %v", nvra, sigkey, err)
	}
	b, err := k.signer.GetBuild(ctx, r.BuildID)
	if err != nil {
		t.Fatal(err)
	}
	url := koji.SignedRPMURL(k.hub.TopURL, b, r, sigkey)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := k.path(filepath.Join("from-koji", sigkey, nvra+".rpm"))
	os.MkdirAll(filepath.Dir(out), 0o755)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKojiEndToEnd: signet's own client, as robosignatory runs Sigul's
// (sign-rpms --store-in-koji --koji-only -k INSTANCE KEY NVRA...), through
// signet's bridge and server (devstack.sh with the Koji settings) against
// the real Koji hub. Koji's queryRPMSigs lists each signature, the copies
// writeSignedRPM makes pass rpmkeys --checksig with the exported key, an
// N-V-R.A Koji does not know fails alone, and IMA file signatures pass
// evmctl on the files of the written package's payload.
func TestKojiEndToEnd(t *testing.T) {
	k := startKojiStack(t)
	rsa, ed := k.sigkey(t, "demo-rsa"), k.sigkey(t, "demo-ed25519")

	// DIR/koji.conf, which devstack.sh writes for Sigul's client, is a
	// Koji client configuration that Koji's own CLI reads and reaches the
	// hub with (over https, checked against its serverca; no login).
	out := testenv.Run(t, k.dir, nil, filepath.Join(k.hub.Dir, "koji"), "-c", k.path("koji.conf"), "-p", "koji", "--noauth",
		"call", "--json-output", "getRPM", k.nvras[0])
	if !strings.Contains(out, `"payloadhash"`) || !strings.Contains(out, `"name": "zero-epoch"`) {
		t.Fatalf("koji -c koji.conf call getRPM %s:\n%s", k.nvras[0], out)
	}

	// A batch of NVRAs with one Koji does not know: that one fails
	// (KOJI_ERROR), every other is signed and stored in Koji.
	unknown := "no-such-package-1.0-1.x86_64"
	batch := append([]string{k.nvras[0], k.nvras[1], unknown}, k.nvras[2:4]...)
	r := k.alice(t, append([]string{"sign-rpms", "--store-in-koji", "--koji-only", "-k", "koji", "demo-rsa"}, batch...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "Error signing "+unknown+": Koji error (KOJI_ERROR): "+unknown+" does not exist in Koji instance koji") ||
		!strings.Contains(r.stderr, "1 of 5 packages were not signed") {
		t.Fatalf("sign-rpms --store-in-koji --koji-only with an unknown NVRA: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Count(r.stderr, "Error signing") != 1 {
		t.Fatalf("more than the unknown package failed:\n%s", r.stderr)
	}
	if m, _ := filepath.Glob(k.path(k.nvras[0] + "*")); len(m) > 0 {
		t.Fatalf("--koji-only wrote %s locally", m)
	}
	for _, n := range []string{k.nvras[0], k.nvras[1], k.nvras[2], k.nvras[3]} {
		checksig(t, k.db, k.signedCopy(t, n, rsa), "Header V4 RSA/SHA256 Signature, key ID "+rsa+": OK")
	}

	// sign-rpm, one package from Koji: stored in Koji only, then (another
	// key) returned and written locally, not stored.
	k.ok(t, k.alice(t, "sign-rpm", "--store-in-koji", "--koji-only", "-k", "koji", "demo-rsa", k.nvras[5]), "sign-rpm --store-in-koji --koji-only")
	checksig(t, k.db, k.signedCopy(t, k.nvras[5], rsa), "Header V4 RSA/SHA256 Signature, key ID "+rsa+": OK")
	k.ok(t, k.alice(t, "sign-rpm", "-k", "koji", "-o", "returned.rpm", "demo-ed25519", k.nvras[4]), "sign-rpm of an NVRA, returned")
	checksig(t, k.db, k.path("returned.rpm"), "Header V4 EdDSA/SHA256 Signature, key ID "+ed+": OK")

	// --file-signing-key: IMA signatures made with demo-ima (its
	// certificate made through the service), checked by evmctl on the
	// files of the copy Koji writes.
	k.ok(t, k.alice(t, "sign-certificate", "--issuer-certificate", "ca", "--subject-certificate", "ima",
		"--subject", "CN=signet devstack IMA", "-o", "ima.pem", "demo-sb-ca", "demo-ima"), "sign-certificate for demo-ima")
	testenv.Run(t, k.dir, nil, "openssl", "x509", "-in", "ima.pem", "-outform", "der", "-out", "ima.der")
	k.ok(t, k.signet(t, "alice", []string{k.alicePass, k.alicePass}, "sign-rpms", "--store-in-koji", "--koji-only", "-k", "koji",
		"--file-signing-key", "demo-ima", "demo-ed25519", k.nvras[3]), "sign-rpms --file-signing-key from Koji")
	signed := k.signedCopy(t, k.nvras[3], ed)
	checksig(t, k.db, signed, "Header V4 EdDSA/SHA256 Signature, key ID "+ed+": OK")
	checkIMA(t, k.stack, k.db, signed, k.path("ima.der"))

	// A hub that is down: every package from Koji fails for itself
	// (KOJI_ERROR), the local file of the same batch is signed.
	conf, err := os.ReadFile(k.path("alice.toml"))
	if err != nil {
		t.Fatal(err)
	}
	down := strings.ReplaceAll(string(conf), k.hub.URL, "http://127.0.0.1:"+strconv.Itoa(testenv.FreePorts(t, 1)[0])+"/kojihub")
	os.WriteFile(k.path("alice-down.toml"), []byte(down), 0o600)
	os.Mkdir(k.path("down"), 0o755)
	local := k.path("local.rpm")
	b, _ := os.ReadFile(filepath.Join(artifacts.RPMUtilsTestdata(t), kojiPackages[0]))
	os.WriteFile(local, b, 0o644)
	r = k.signet(t, "alice-down", []string{k.alicePass}, "sign-rpms", "-k", "koji", "-o", "down", "demo-rsa", k.nvras[0], "local.rpm", k.nvras[1])
	if r.code != 1 || strings.Count(r.stderr, "Koji error (KOJI_ERROR): getRPM(") != 2 || !strings.Contains(r.stderr, "2 of 3 packages were not signed") {
		t.Fatalf("sign-rpms with the hub down: exit %d\n%s", r.code, r.stderr)
	}
	checksig(t, k.db, k.path("down/local.rpm"), "Header V4 RSA/SHA256 Signature, key ID "+rsa+": OK")
}
