package robo

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// testOSTree: a compose.ostree message for a configured ref has the
// commit in that ref's repository signed (ostree show reports a good
// signature by the key) and the ref updated; a redelivery signs nothing
// again; a ref not configured, or no commit, is acknowledged unanswered;
// a commit not in the repository is a FAILURE.
func testOSTree(t *testing.T, w *world, cert []byte) {
	testenv.MustHave(t, "ostree", "gpg")
	const name = "ostreesign"
	rk := "org.fedoraproject.test.pungi.compose.ostree"
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tree/usr/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "tree/usr/bin/hello"), []byte("#!/bin/sh\necho hello\n"), 0o755)
	testenv.Run(t, dir, nil, "ostree", "--repo=repo", "init", "--mode=archive")
	// The compose's commit, on a branch of its own: the ref robo updates
	// does not exist yet.
	commit := strings.TrimSpace(testenv.Run(t, dir, nil, "ostree", "--repo=repo", "commit", "-b", "compose/tmp", "--tree=dir=tree", "-s", "release 1"))
	const ref = "fedora/43/x86_64/silverblue"
	repo := filepath.Join(dir, "repo")
	w.startRobo(t, fmt.Sprintf(`[amqp]
queue = "%[1]s"
dead_letter_exchange = "%[1]s.dlx"
dead_letter_queue = "%[1]s.dead"
[ostree_sign]
enabled = true
routing_keys = [%[2]q]
[[ostree_sign.refs]]
ref = %[3]q
repo = %[4]q
key = "demo-rsa"
passphrase_file = %[5]q
update_ref = true
`, name, rk, ref, repo, w.passFile))
	p := w.newPeer(t, name+".finished", rk+".finished")
	body := func(ref string, commit any) []byte {
		return jsonBody(t, map[string]any{"ref": ref, "commitid": commit, "arch": "x86_64", "variant": "Silverblue",
			"location": "https://kojipkgs.example.org/compose/ostree/repo/", "compose_id": "Fedora-43-20261207.n.0"})
	}
	p.publish(msg{key: rk, body: body(ref, commit)})
	f := p.waitFinished(1, 60*time.Second)[0]
	if status(f) != "SUCCESS" || f["signed"] != true || f["ref_updated"] != true {
		t.Fatalf("finished %v", f)
	}
	meta := filepath.Join(repo, "objects", commit[:2], commit[2:]+".commitmeta")
	fi, err := os.Stat(meta)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("commitmeta: %v %v", fi, err)
	}
	keyring := filepath.Join(dir, "keys")
	os.Mkdir(keyring, 0o700)
	dearmor := exec.Command("gpg", "--dearmor")
	dearmor.Stdin = bytes.NewReader(cert)
	bin, err := dearmor.Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(keyring, "pubring.gpg"), bin, 0o600)
	if out := testenv.Run(t, dir, nil, "ostree", "--repo=repo", "show", "--gpg-homedir="+keyring, ref); !strings.Contains(out, "Good signature") || !strings.Contains(out, commit) {
		t.Fatalf("ostree show %s:\n%s", ref, out)
	}
	if got := strings.TrimSpace(testenv.Run(t, dir, nil, "ostree", "--repo=repo", "rev-parse", ref)); got != commit {
		t.Fatalf("ref %s is %s, want %s", ref, got, commit)
	}

	// A redelivery: the commitmeta is left as it is.
	before, _ := os.ReadFile(meta)
	fi0, _ := os.Stat(meta)
	p.reset()
	p.publish(msg{key: rk, body: body(ref, commit)})
	f = p.waitFinished(1, 60*time.Second)[0]
	after, _ := os.ReadFile(meta)
	fi1, _ := os.Stat(meta)
	if status(f) != "SUCCESS" || f["signed"] != false || !bytes.Equal(before, after) || !fi0.ModTime().Equal(fi1.ModTime()) {
		t.Fatalf("redelivery: %v (commitmeta changed: %v)", f, !bytes.Equal(before, after))
	}

	// Unconfigured ref, no commit: acknowledged, unanswered. A commit the
	// repository does not hold: FAILURE. A ref that climbs out: rejected.
	p.reset()
	p.publish(msg{key: rk, body: body("fedora/43/x86_64/kinoite", commit)})
	p.publish(msg{key: rk, body: body(ref, nil)})
	p.publish(msg{key: rk, body: body(ref, strings.Repeat("0", 64))})
	p.publish(msg{key: rk, body: body("../../etc", commit)})
	w.waitQueues(t, map[string]int{name: 0, name + ".dead": 1})
	fs := p.waitFinished(1, 30*time.Second)
	if len(fs) != 1 || status(fs[0]) != "FAILURE" || !strings.Contains(fmt.Sprint(fs[0]["failure-message"]), "not in the repository") {
		t.Fatalf("finished %v", fs)
	}
	if _, err := os.Stat(filepath.Join(repo, "objects/00", strings.Repeat("0", 62)+".commitmeta")); err == nil {
		t.Fatal("a commitmeta was written for a commit the repository does not hold")
	}
}
