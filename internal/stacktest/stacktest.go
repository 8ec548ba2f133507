// Package stacktest is for tests that run signet's programs as processes
// on their own files, as scripts/devstack.sh and scripts/bench-scale.sh
// lay them out: the PKI files the configurations name, and the ceremony
// that gives a second token the keys of a first through signet-server's
// commands (a wrap key split on one token and imported on the other from
// some of its shares, then key backups restored there).
package stacktest

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testpki"
)

// WritePKI writes into dir (made if missing, mode 700) a CA named caName
// (ca.pem) and certificates with their keys for the bridge (bridge.pem,
// CN and DNS name localhost, and 127.0.0.1), the servers (server.pem, CN
// and DNS name server; both are TLS server and client) and the user alice
// (alice.pem, a TLS client), each key in NAME-key.pem. It returns dir.
func WritePKI(t testing.TB, dir, caName string) string {
	t.Helper()
	ca := testpki.New(t, caName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCert(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]testpki.Leaf{
		"bridge": {CN: "localhost", DNSNames: []string{"localhost"}, IPs: testpki.Loopback, EKU: testpki.Both},
		"server": {CN: "server", DNSNames: []string{"server"}, EKU: testpki.Both},
		"alice":  {CN: "alice", EKU: testpki.Client},
	} {
		if err := ca.MustIssue(t, l).Write(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Token is one token as signet-server's ceremony commands reach it.
type Token struct {
	// Admin runs one signet-server process with args added to what
	// names this token (module, label, database, transcript) and returns
	// its standard output; it fails the test when the command fails.
	Admin func(args ...string) string
	// PINFile and SOPINFile hold the token's user and SO PINs.
	PINFile, SOPINFile string
}

func (tok Token) pin() string { return "--pin-file=" + tok.PINFile }

// WrapKey is a wrap key CreateWrapKey made.
type WrapKey struct {
	// ID is the wrap key's id, as the commands print it.
	ID string
	// Shares is each custodian's share file.
	Shares map[string]string
}

var createdRE = regexp.MustCompile(`^wrap key ([0-9a-f]{16}) created`)

// CreateWrapKey creates tok's wrap key (token wrap-key create), split into
// one share for each custodian, threshold of which rebuild it, the share
// files written to dir.
func CreateWrapKey(t testing.TB, tok Token, dir string, threshold int, custodians ...string) WrapKey {
	t.Helper()
	out := tok.Admin("token", "wrap-key", "create", "--shares", strconv.Itoa(len(custodians)), "--threshold", strconv.Itoa(threshold),
		"--out-dir", dir, "--custodian", strings.Join(custodians, ","), "--so-pin-file", tok.SOPINFile, tok.pin())
	m := createdRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("wrap-key create said:\n%s", out)
	}
	w := WrapKey{ID: m[1], Shares: map[string]string{}}
	for _, c := range custodians {
		files, _ := filepath.Glob(filepath.Join(dir, "*-"+c+".txt"))
		if len(files) != 1 {
			t.Fatalf("share files of custodian %s in %s: %v", c, dir, files)
		}
		w.Shares[c] = files[0]
	}
	return w
}

// ImportWrapKey imports the wrap key id on tok from shareFiles (token
// wrap-key import), and checks that the command says it imported that
// key.
func ImportWrapKey(t testing.TB, tok Token, id string, shareFiles ...string) {
	t.Helper()
	args := []string{"token", "wrap-key", "import"}
	for _, f := range shareFiles {
		args = append(args, "--share", f)
	}
	out := tok.Admin(append(args, "--so-pin-file", tok.SOPINFile, tok.pin())...)
	if !strings.Contains(out, "wrap key "+id+" imported") {
		t.Fatalf("wrap-key import of %s said:\n%s", id, out)
	}
}

// Backup writes a backup of tok's key name (made with --backup) to file
// (key backup).
func Backup(t testing.TB, tok Token, name, file string) {
	t.Helper()
	tok.Admin("key", "backup", name, "-o", file, tok.pin())
}

// Restore restores each backup file into tok (key restore), which must
// hold the wrap key the backups were made under.
func Restore(t testing.TB, tok Token, files ...string) {
	t.Helper()
	for _, f := range files {
		tok.Admin("key", "restore", f, tok.pin())
	}
}
