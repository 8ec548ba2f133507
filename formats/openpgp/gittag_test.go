package openpgp

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

const testGitTag = "object 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ntype commit\ntag v1\ntagger Signet Test <signet-test@example.org> 1709294400 +0000\n\nRelease 1\n"

func TestCheckGitTag(t *testing.T) {
	if err := CheckGitTag([]byte(testGitTag)); err != nil {
		t.Errorf("good tag: %v", err)
	}
	noMessage := "object 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ntype commit\ntag v1\ntagger T <t@example.org> 1 +0000\n"
	if err := CheckGitTag([]byte(noMessage)); err != nil {
		t.Errorf("tag without a message: %v", err)
	}
	sig := mustArmoredSig(t, mustKey(t))
	for _, c := range []struct{ name, tag, want string }{
		{"empty", "", "0 lines"},
		{"three lines", "object x\ntype commit\ntag v1\n", "3 lines"},
		{"no final line feed on tagger", strings.TrimSuffix(noMessage, "\n"), "3 lines"},
		{"no final line feed", strings.TrimSuffix(testGitTag, "\n"), "does not end with a line feed"},
		{"tree tag", strings.Replace(testGitTag, "type commit", "type tree", 1), `line 2 is "type tree"`},
		{"type commits", strings.Replace(testGitTag, "type commit", "type commits", 1), `line 2 is "type commits"`},
		{"lines swapped", "type commit\nobject x\ntag v1\ntagger x\n", `line 1 is "type commit", want one starting "object "`},
		{"no tagger", "object x\ntype commit\ntag v1\n\nmessage\n", `line 4 is ""`},
		{"commit object", "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor x\ncommitter x\n\nmsg\n", "line 1"},
		{"not UTF-8", testGitTag + "caf\xe9\n", "not UTF-8"},
		{"signed", testGitTag + string(sig), "line 7 starts a signature (-----BEGIN PGP SIGNATURE-----)"},
		{"SSH signed", testGitTag + "-----BEGIN SSH SIGNATURE-----\nx\n-----END SSH SIGNATURE-----\n", "SSH SIGNATURE"},
	} {
		err := CheckGitTag([]byte(c.tag))
		if !errors.Is(err, ErrNotGitTag) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrNotGitTag containing %q", c.name, err, c.want)
		}
	}
}

func mustKey(t *testing.T) *Key {
	t.Helper()
	k, err := NewKey(testSigners()[0].signer, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestGitTagWithGit signs a tag made by git as a Sigul client does (sign
// the output of git cat-file, append the signature, git mktag, move the
// ref) and has git verify-tag check it.
func TestGitTagWithGit(t *testing.T) {
	testenv.MustHave(t, "git")
	testenv.MustHave(t, "gpg")
	k := mustKey(t)
	home, _ := verifierSetup(t, k)
	repo := t.TempDir()
	env := append(os.Environ(),
		"GNUPGHOME="+home,
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Signet Test", "GIT_AUTHOR_EMAIL=signet-test@example.org",
		"GIT_COMMITTER_NAME=Signet Test", "GIT_COMMITTER_EMAIL=signet-test@example.org",
	)
	git := func(stdin []byte, args ...string) (string, string, error) {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "gpg.program=gpg"}, args...)...)
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	mustGit := func(stdin []byte, args ...string) string {
		t.Helper()
		out, errOut, err := git(stdin, args...)
		if err != nil {
			t.Fatalf("git %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	mustGit(nil, "init", "-q")
	writeFile(t, repo, "README", []byte("hello\n"))
	mustGit(nil, "add", "README")
	mustGit(nil, "commit", "-q", "-m", "first")
	mustGit(nil, "tag", "-a", "-m", "Release 1\n\nwith a longer message", "v1")

	tag := []byte(mustGit(nil, "cat-file", "tag", "v1"))
	if err := CheckGitTag(tag); err != nil {
		t.Fatalf("CheckGitTag on git's tag: %v\n%s", err, tag)
	}
	if _, errOut, err := git(nil, "verify-tag", "v1"); err == nil {
		t.Fatalf("git verify-tag accepts the unsigned tag:\n%s", errOut)
	}
	sig, err := k.SignDetachedArmored(bytes.NewReader(tag), false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	signed := AppendGitTagSignature(tag, sig)
	id := strings.TrimSpace(mustGit(signed, "mktag"))
	mustGit(nil, "update-ref", "refs/tags/v1", id)

	_, errOut, err := git(nil, "verify-tag", "v1")
	if err != nil || !strings.Contains(errOut, `Good signature from "`+testUID+`"`) {
		t.Errorf("git verify-tag v1 (err %v):\n%s", err, errOut)
	}
	if _, errOut, err := git(nil, "verify-tag", "--raw", "v1"); err != nil || !strings.Contains(errOut, "[GNUPG:] VALIDSIG "+k.FingerprintHex()) {
		t.Errorf("git verify-tag --raw (err %v), want VALIDSIG %s:\n%s", err, k.FingerprintHex(), errOut)
	}
	if err := CheckGitTag([]byte(mustGit(nil, "cat-file", "tag", "v1"))); !errors.Is(err, ErrNotGitTag) {
		t.Errorf("CheckGitTag on the signed tag: error %v, want ErrNotGitTag", err)
	}

	// A signature over other bytes is refused.
	changed := bytes.Replace(tag, []byte("Release 1"), []byte("Release 2"), 1)
	id = strings.TrimSpace(mustGit(AppendGitTagSignature(changed, sig), "mktag"))
	mustGit(nil, "update-ref", "refs/tags/v1", id)
	if _, errOut, err := git(nil, "verify-tag", "v1"); err == nil || !strings.Contains(errOut, "BAD signature") {
		t.Errorf("git verify-tag on a changed tag (err %v):\n%s", err, errOut)
	}
}

func TestAppendGitTagSignature(t *testing.T) {
	if got := string(AppendGitTagSignature([]byte("tag\n"), []byte("sig"))); got != "tag\nsig\n" {
		t.Errorf("got %q", got)
	}
	if got := string(AppendGitTagSignature([]byte("tag\n"), []byte("sig\n"))); got != "tag\nsig\n" {
		t.Errorf("got %q", got)
	}
}
