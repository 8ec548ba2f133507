package client_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/servertest"
)

// TestSignRPMsConnectionDies: when the reply stream breaks mid-batch,
// every package still gets a result that says why it was not signed, and
// the progress callback hears of each.
func TestSignRPMsConnectionDies(t *testing.T) {
	e := servertest.New(t)
	ctx := ctxT(t)
	alice := newClient(t, e, "alice")
	src := artifacts.RPMUtilsTestdata(t)
	out := t.TempDir()
	var files []client.RPMFile
	for _, n := range []string{"payload-test-0.1-w9.gzdio.x86_64.rpm", "empty-0.1-1.x86_64.rpm", "zero-epoch-0.1-1.x86_64.rpm"} {
		files = append(files, client.RPMFile{Path: filepath.Join(src, n), Output: filepath.Join(out, n)})
	}
	reported := map[string]error{}
	opts := client.SignRPMOptions{Key: "fedora", Passphrase: []byte(servertest.AlicePass), HeadSigning: true,
		Progress: func(done, total int, r client.RPMResult) { reported[r.Path] = r.Err }}

	// Control: the batch signs.
	res, err := alice.SignRPMs(ctx, opts, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Path, r.Err)
		}
	}

	// One bit flipped in the first sub-reply header (past the 141 bytes
	// of the main reply: code, empty field block, MAC, length, MAC).
	e.Relay.SetTamper(servertest.FlipAt(141 + 20))
	defer e.Relay.SetTamper(nil)
	clear(reported)
	opts.Passphrase = []byte(servertest.AlicePass)
	res, err = alice.SignRPMs(ctx, opts, files)
	if !errors.Is(err, client.ErrIntegrity) {
		t.Fatalf("batch error %v, want ErrIntegrity", err)
	}
	for _, r := range res {
		if !errors.Is(r.Err, client.ErrNotSigned) || !errors.Is(r.Err, client.ErrIntegrity) || !strings.Contains(r.Err.Error(), "after 0 of 3 replies") {
			t.Errorf("%s: %v; want why it has no reply", r.Path, r.Err)
		}
		if got, ok := reported[r.Path]; !ok || got != r.Err {
			t.Errorf("%s: progress reported %v", r.Path, got)
		}
	}
	if n := servertest.DirNames(t, out); len(n) != 3 {
		t.Fatalf("outputs %q: the control batch wrote 3, the broken one must add or remove none", n)
	}
}
