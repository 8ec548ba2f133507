package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/stacktest"
	"github.com/signet-project/signet/internal/testenv"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// TestBackupRestoreStack is the backup ceremony between two machines, with
// real processes: on A (a SoftHSM2 directory of its own) the wrap key is
// created 3-of-5 and RSA-4096, RSA-2048, P-256 and P-384 keys are
// generated for backup, certified and backed up; B (another directory)
// gets the wrap key from three shares, restores every key, and runs
// signet-server with signet-bridge on the restored state. Through that
// stack the signet client signs RPMs, an EFI image and a file, and
// rpmkeys, sbverify and gpg accept them with what A exported. Both audit
// chains verify; no PIN, passphrase, share, wrap key or wrapped key shows
// up in any transcript, log or database.
func TestBackupRestoreStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds signet, signet-bridge and signet-server and runs them")
	}
	testenv.MustHave(t, "rpmkeys", "sbverify", "gpg", "gpgconf")
	rpms := artifacts.RPMUtilsTestdata(t)
	efi := artifacts.EFIImages(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/signet-server", "./cmd/signet-bridge", "./cmd/signet")
	build.Dir = artifacts.Root()
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	tkA, tkB := softhsmtest.NewDir(t), softhsmtest.NewDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	secrets := map[string][]byte{}
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeSecretFile := func(path string, v []byte) {
		t.Helper()
		if err := os.WriteFile(path, append(bytes.Clone(v), '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		secrets[path] = v
	}
	writeSecretFile(filepath.Join(a, "pin"), tkA.PIN)
	writeSecretFile(filepath.Join(a, "so-pin"), tkA.SOPIN)
	writeSecretFile(filepath.Join(b, "pin"), tkB.PIN)
	writeSecretFile(filepath.Join(b, "so-pin"), tkB.SOPIN)
	alicePass := []byte("alice-" + hex.EncodeToString(randBytes(t, 8)))
	writeSecretFile(filepath.Join(b, "alice-pass"), alicePass)

	// server runs signet-server on host h (a or b) and returns its stdout.
	server := func(tk *softhsmtest.Token, h string, args ...string) string {
		t.Helper()
		full := append([]string{"--batch", "--module", tk.Module, "--token-label", tk.Label,
			"--database", filepath.Join(h, "signet.db"), "--transcript", filepath.Join(h, "ceremony.log")}, args...)
		cmd := exec.Command(filepath.Join(bin, "signet-server"), full...)
		cmd.Dir = h
		cmd.Env = tk.Env()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("signet-server %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}
	A := func(args ...string) string { return server(tkA, a, args...) }
	B := func(args ...string) string { return server(tkB, b, args...) }
	pinA, pinB := "--pin-file="+filepath.Join(a, "pin"), "--pin-file="+filepath.Join(b, "pin")
	tokA := stacktest.Token{Admin: A, PINFile: filepath.Join(a, "pin"), SOPINFile: filepath.Join(a, "so-pin")}
	tokB := stacktest.Token{Admin: B, PINFile: filepath.Join(b, "pin"), SOPINFile: filepath.Join(b, "so-pin")}

	// A: the wrap key, four keys for backup, what A publishes, the backups.
	wrap := stacktest.CreateWrapKey(t, tokA, filepath.Join(a, "shares"), 3, "ana", "ben", "cho", "dev", "eve")
	shareFiles, _ := filepath.Glob(filepath.Join(a, "shares", "*.txt"))
	if len(shareFiles) != 5 {
		t.Fatalf("%d share files", len(shareFiles))
	}
	for _, f := range shareFiles {
		fh, _ := os.Open(f)
		sh, err := hsm.ParseShare(fh)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		secrets[f] = sh.Value
	}
	keys := []struct{ name, typ string }{{"rpm", "rsa4096"}, {"sb", "rsa2048"}, {"data", "ecdsa-p256"}, {"sbca", "ecdsa-p384"}}
	for _, k := range keys {
		args := []string{"key", "generate", k.name, "--type", k.typ, "--backup", pinA}
		if k.name == "rpm" || k.name == "data" {
			// OpenPGP keys; the Secure Boot keys have X.509 certificates only.
			args = append(args, "--uid", "Backup stack "+k.name+" <"+k.name+"@example.org>")
		}
		A(args...)
	}
	A("key", "export", "rpm", "--format", "openpgp", "-o", filepath.Join(a, "rpm.asc"))
	A("key", "export", "data", "--format", "openpgp", "-o", filepath.Join(a, "data.asc"))
	A("key", "export", "sbca", "--format", "x509-ca", "--cert-name", "ca", "--subject", "/CN=Backup stack Secure Boot CA", "-o", filepath.Join(a, "sb-ca.pem"), pinA)
	A("key", "export", "sb", "--format", "x509", "--issuer", "sbca", "--issuer-cert", "ca", "--kind", "codesigning", "--days", "365",
		"--cert-name", "signer", "--subject", "/CN=Backup stack Secure Boot signer", "-o", filepath.Join(a, "sb-signer.pem"), pinA)
	for _, k := range keys {
		stacktest.Backup(t, tokA, k.name, filepath.Join(a, k.name+".backup"))
	}

	// B receives the backup files and three custodians' shares.
	var shares, backups []string
	for _, c := range []string{"ben", "dev", "eve"} {
		src := wrap.Shares[c]
		dst := filepath.Join(b, filepath.Base(src))
		copyFile(t, src, dst, 0o600)
		shares = append(shares, dst)
	}
	for _, k := range keys {
		copyFile(t, filepath.Join(a, k.name+".backup"), filepath.Join(b, k.name+".backup"), 0o600)
		backups = append(backups, filepath.Join(b, k.name+".backup"))
	}
	stacktest.ImportWrapKey(t, tokB, wrap.ID, shares...)
	stacktest.Restore(t, tokB, backups...)
	B("user", "add", "alice")
	for _, k := range keys {
		B("key", "grant", k.name, "alice", "--passphrase-file", filepath.Join(b, "alice-pass"), pinB)
	}

	// B's stack: a PKI, signet-bridge and signet-server on loopback.
	pki := stacktest.WritePKI(t, filepath.Join(dir, "pki"), "backup stack CA")
	ports := testenv.FreePorts(t, 3)
	writeFile(t, filepath.Join(b, "bridge.toml"), fmt.Sprintf(`client_listen = "127.0.0.1:%d"
server_listen = "127.0.0.1:%d"
metrics_listen = "127.0.0.1:%d"
server_names = ["server"]

[tls]
cert = "%s/bridge.pem"
key = "%s/bridge-key.pem"
ca = "%s/ca.pem"
`, ports[0], ports[1], ports[2], pki, pki, pki))
	writeFile(t, filepath.Join(b, "server.toml"), fmt.Sprintf(`database = "%s/signet.db"
transcript = "%s/ceremony.log"

[token]
module = "%s"
label = "%s"

[tls]
cert = "%s/server.pem"
key = "%s/server-key.pem"
ca = "%s/ca.pem"

[[bridge]]
address = "127.0.0.1:%d"
server_name = "localhost"
idle = 2
`, b, b, tkB.Module, tkB.Label, pki, pki, pki, ports[1]))
	writeFile(t, filepath.Join(b, "alice.toml"), fmt.Sprintf(`bridge-hostname = "localhost"
bridge-port = %d
server-hostname = "server"
user-name = "alice"
ca-file = "%s/ca.pem"
client-cert-file = "%s/alice.pem"
client-key-file = "%s/alice-key.pem"
`, ports[0], pki, pki, pki))
	bridgeLog, serverLog := filepath.Join(b, "bridge.log"), filepath.Join(b, "server.log")
	start(t, tkB.Env(), bridgeLog, filepath.Join(bin, "signet-bridge"), "--config", filepath.Join(b, "bridge.toml"), "run")
	start(t, tkB.Env(), serverLog, filepath.Join(bin, "signet-server"), "--config", filepath.Join(b, "server.toml"), "run")
	client := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(bin, "signet"), append([]string{"-c", filepath.Join(b, "alice.toml"), "--batch"}, args...)...)
		cmd.Dir = b
		cmd.Stdin = bytes.NewReader(append(bytes.Clone(alicePass), 0))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for i := 0; ; i++ {
		out, err := client("get-public-key", "rpm")
		if err == nil {
			break
		}
		if i == 300 {
			t.Fatalf("no request went through B's stack in 60 s: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// RPMs signed through B, checked by rpmkeys with A's certificate.
	rpmdb := filepath.Join(dir, "rpmdb")
	os.MkdirAll(rpmdb, 0o755)
	testenv.Run(t, "", nil, "rpmkeys", "--dbpath", rpmdb, "--import", filepath.Join(a, "rpm.asc"))
	signed := filepath.Join(b, "signed")
	os.MkdirAll(signed, 0o755)
	var inputs []string
	for _, n := range []string{"zero-epoch-0.1-1.x86_64.rpm", "empty-0.1-1.x86_64.rpm"} {
		copyFile(t, filepath.Join(rpms, n), filepath.Join(b, n), 0o644)
		inputs = append(inputs, n)
	}
	if out, err := client(append([]string{"sign-rpms", "-o", "signed", "rpm"}, inputs...)...); err != nil {
		t.Fatalf("sign-rpms through B: %v\n%s", err, out)
	}
	aCert := readFile(t, filepath.Join(a, "rpm.asc"))
	keyID := pgpKeyID(t, dir, aCert)
	for _, n := range inputs {
		out := testenv.Run(t, "", nil, "rpmkeys", "--dbpath", rpmdb, "--checksig", "-v", filepath.Join(signed, n))
		if !strings.Contains(out, "Header V4 RSA/SHA256 Signature, key ID "+keyID+": OK") || strings.Contains(out, "NOT OK") {
			t.Fatalf("rpmkeys --checksig -v %s:\n%s", n, out)
		}
	}

	// An EFI image signed through B with the restored signer key and
	// certificate, checked by sbverify against A's CA certificate.
	if out, err := client("sign-pe", "-o", "grub.signed.efi", "sb", "signer", filepath.Join(efi, "amd64", "grub.efi")); err != nil {
		t.Fatalf("sign-pe through B: %v\n%s", err, out)
	}
	testenv.Run(t, b, nil, "sbverify", "--cert", filepath.Join(a, "sb-ca.pem"), "grub.signed.efi")
	if bytes.Equal(readFile(t, filepath.Join(b, "grub.signed.efi")), readFile(t, filepath.Join(efi, "amd64", "grub.efi"))) {
		t.Fatal("sign-pe wrote the image unchanged")
	}

	// A file signed through B with the restored P-256 key, checked by gpg
	// with A's certificate.
	writeFile(t, filepath.Join(b, "statement.txt"), "signed by token B with a key made on token A\n")
	if out, err := client("sign-data", "-o", "statement.sig", "data", "statement.txt"); err != nil {
		t.Fatalf("sign-data through B: %v\n%s", err, out)
	}
	home := filepath.Join(dir, "gnupg")
	os.Mkdir(home, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	gpg := []string{"GNUPGHOME=" + home}
	testenv.Run(t, "", gpg, "gpg", "--batch", "--import", filepath.Join(a, "data.asc"))
	if out := testenv.Run(t, b, gpg, "gpg", "--batch", "--status-fd", "1", "--verify", "statement.sig", "statement.txt"); !strings.Contains(out, "[GNUPG:] VALIDSIG ") {
		t.Fatalf("gpg --verify:\n%s", out)
	}

	// Both audit chains verify, and name who did each backup step.
	for h, f := range map[string]func(...string) string{a: A, b: B} {
		if out := f("audit", "verify"); !strings.Contains(out, "audit chain OK") {
			t.Fatalf("%s: %s", h, out)
		}
	}
	showA, showB := A("audit", "show", "--last", "100"), B("audit", "show", "--last", "100")
	for show, ops := range map[string][]string{showA: {"wrap-key-create", "key-generate", "key-backup"}, showB: {"wrap-key-import", "key-restore", "key-grant"}} {
		for _, op := range ops {
			if !regexp.MustCompile(`"actor":"[^"@]+@[^"]+","operation":"` + op + `"`).MatchString(show) {
				t.Fatalf("no %s record with its actor in:\n%s", op, show)
			}
		}
	}
	if !strings.Contains(showB, "presented by custodians ben, dev, eve") {
		t.Fatalf("the import does not name its custodians:\n%s", showB)
	}

	// Nothing secret in the transcripts, logs or databases.
	stop(t)
	for _, k := range keys {
		data := readFile(t, filepath.Join(a, k.name+".backup"))
		w := regexp.MustCompile(`"wrapped_private_key":"([^"]+)"`).FindSubmatch(data)
		if w == nil {
			t.Fatalf("%s.backup has no wrapped key", k.name)
		}
		raw, err := base64.StdEncoding.DecodeString(string(w[1]))
		if err != nil {
			t.Fatal(err)
		}
		secrets[k.name+".backup (wrapped key)"] = raw
	}
	for _, f := range []string{filepath.Join(a, "ceremony.log"), filepath.Join(b, "ceremony.log"), filepath.Join(a, "signet.db"),
		filepath.Join(b, "signet.db"), bridgeLog, serverLog} {
		data := readFile(t, f)
		for name, s := range secrets {
			for _, enc := range [][]byte{s, []byte(hex.EncodeToString(s)), []byte(strings.ToUpper(hex.EncodeToString(s))),
				[]byte(base64.StdEncoding.EncodeToString(s)), []byte(base64.RawStdEncoding.EncodeToString(s))} {
				if bytes.Contains(data, enc) {
					t.Fatalf("%s holds %s", f, name)
				}
			}
		}
	}
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(dst, readFile(t, src), mode); err != nil {
		t.Fatal(err)
	}
}

// pgpKeyID is the short key id of an armored certificate, as gpg reads it.
func pgpKeyID(t *testing.T, dir string, cert []byte) string {
	t.Helper()
	f := filepath.Join(dir, "cert-for-keyid.asc")
	os.WriteFile(f, cert, 0o644)
	out := testenv.Run(t, "", nil, "gpg", "--batch", "--with-colons", "--show-keys", f)
	m := regexp.MustCompile(`(?m)^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("gpg --show-keys:\n%s", out)
	}
	return strings.ToLower(m[1][8:]) // rpmkeys prints the short key id
}

var stackProcs []*exec.Cmd

// start runs a long-lived process with its output in logPath; it is
// stopped by stop or at the end of the test.
func start(t *testing.T, env []string, logPath, name string, args ...string) {
	t.Helper()
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stackProcs = append(stackProcs, cmd)
	t.Cleanup(func() { stop(t); log.Close() })
}

// stop ends the processes start started: SIGTERM, then SIGKILL after 10 s.
func stop(t *testing.T) {
	for _, cmd := range stackProcs {
		if cmd.ProcessState != nil {
			continue
		}
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	stackProcs = nil
}
