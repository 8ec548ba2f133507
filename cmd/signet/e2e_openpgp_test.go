package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testenv"
)

// gpgHome makes a throwaway GnuPG home in dir holding certs and returns it
// with the first certificate's fingerprint.
func gpgHome(t *testing.T, dir string, certs ...[]byte) (home, fpr string) {
	t.Helper()
	home, err := os.MkdirTemp(dir, "gnupg")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	for _, c := range certs {
		cmd := exec.Command("gpg", "--batch", "--homedir", home, "--import")
		cmd.Stdin = bytes.NewReader(c)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gpg --import: %v\n%s", err, out)
		}
	}
	out := testenv.Run(t, dir, nil, "gpg", "--batch", "--homedir", home, "--with-colons", "--fingerprint")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			return home, f[9]
		}
	}
	t.Fatalf("no fingerprint in\n%s", out)
	return "", ""
}

// testOpenPGPOps: decrypt, sign-git-tag, sign-container and sign-ostree
// through client, bridge and server, checked by gpg, git, skopeo and
// ostree.
func testOpenPGPOps(t *testing.T, s *stack) {
	cert := s.publicKey(t, "demo-rsa")
	home, fpr := gpgHome(t, s.dir, cert)
	gpgEnv := []string{"GNUPGHOME=" + home}

	// decrypt: a message gpg encrypted to the key comes back whole.
	plain := make([]byte, 300_000)
	rand.Read(plain)
	os.WriteFile(s.path("plain.bin"), plain, 0o600)
	testenv.Run(t, s.dir, gpgEnv, "gpg", "--batch", "--trust-model", "always", "--encrypt", "-r", fpr, "-o", "cipher.gpg", "plain.bin")
	s.ok(t, s.alice(t, "decrypt", "-o", "decrypted.bin", "demo-rsa", "cipher.gpg"), "decrypt")
	if got, _ := os.ReadFile(s.path("decrypted.bin")); !bytes.Equal(got, plain) {
		t.Fatal("decrypt did not return the original bytes")
	}
	// Plaintext is the user's alone, whatever the umask.
	if fi, err := os.Stat(s.path("decrypted.bin")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("decrypt -o wrote the plaintext with mode %v, want 0600 (%v)", fi.Mode().Perm(), err)
	}
	msg, _ := os.ReadFile(s.path("cipher.gpg"))
	msg[len(msg)-30] ^= 1
	os.WriteFile(s.path("cipher-bad.gpg"), msg, 0o600)
	s.fails(t, s.alice(t, "decrypt", "-o", "decrypted-bad.bin", "demo-rsa", "cipher-bad.gpg"), "decrypt of a changed message", "DECRYPT_FAILED")
	s.absent(t, "decrypted-bad.bin")

	// sign-git-tag: the tag in the repository is replaced by a signed one
	// that git verify-tag accepts.
	repo := s.path("repo")
	gitEnv := append(gpgEnv, "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	testenv.Run(t, s.dir, gitEnv, "git", "init", "-q", repo)
	testenv.Run(t, repo, gitEnv, "git", "commit", "-q", "--allow-empty", "-m", "first")
	testenv.Run(t, repo, gitEnv, "git", "tag", "-a", "-m", "release 1.0", "v1.0")
	cmd := exec.Command(filepath.Join(s.dir, "bin/signet"), "-c", s.path("alice.toml"), "--batch", "sign-git-tag", "demo-rsa", "v1.0")
	cmd.Dir, cmd.Stdin = repo, strings.NewReader(s.alicePass+"\x00")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sign-git-tag: %v\n%s", err, out)
	}
	if out := testenv.Run(t, repo, gitEnv, "git", "verify-tag", "v1.0"); !strings.Contains(out, "Good signature") {
		t.Fatalf("git verify-tag:\n%s", out)
	}

	// sign-container: skopeo accepts the signature for this manifest and
	// reference, and refuses it for another reference.
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2811478,"digest":"sha256:0b3bca3c67bdc9a8ddc1b4e3fe34bd66e3f3e0b6a3f3d6ee3c2c1f6cdbd0a7c1"}]}`
	os.WriteFile(s.path("manifest.json"), []byte(manifest), 0o644)
	ref := "registry.example.org/os/base:1.0"
	s.ok(t, s.alice(t, "sign-container", "-o", "container.sig", "demo-rsa", "manifest.json", ref), "sign-container")
	if out := testenv.Run(t, s.dir, gpgEnv, "skopeo", "standalone-verify", "manifest.json", ref, fpr, "container.sig"); !strings.Contains(out, "Signature verified") {
		t.Fatalf("skopeo standalone-verify:\n%s", out)
	}
	other := exec.Command("skopeo", "standalone-verify", "manifest.json", "registry.example.org/os/other:1.0", fpr, "container.sig")
	other.Dir, other.Env = s.dir, append(os.Environ(), gpgEnv...)
	if out, err := other.CombinedOutput(); err == nil {
		t.Fatalf("skopeo accepted the signature for another reference:\n%s", out)
	}

	// sign-ostree: the returned .commitmeta, stored beside the commit, is
	// reported as a good signature by ostree.
	ot := s.path("ostree")
	os.MkdirAll(filepath.Join(ot, "tree/usr/bin"), 0o755)
	os.WriteFile(filepath.Join(ot, "tree/usr/bin/hello"), []byte("#!/bin/sh\necho hello\n"), 0o755)
	testenv.Run(t, ot, nil, "ostree", "--repo=repo", "init", "--mode=archive")
	commit := strings.TrimSpace(testenv.Run(t, ot, nil, "ostree", "--repo=repo", "commit", "-b", "os/x86_64/stable", "--tree=dir=tree", "-s", "release 1"))
	obj := filepath.Join(ot, "repo/objects", commit[:2], commit[2:]+".commit")
	s.ok(t, s.alice(t, "sign-ostree", "-o", obj+"meta", "demo-rsa", commit, obj), "sign-ostree")
	keyring := s.path("ostree-keys")
	os.Mkdir(keyring, 0o700)
	dearmor := exec.Command("gpg", "--dearmor")
	dearmor.Stdin = bytes.NewReader(cert)
	bin, err := dearmor.Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(keyring, "pubring.gpg"), bin, 0o600)
	if out := testenv.Run(t, ot, nil, "ostree", "--repo=repo", "show", "--gpg-homedir="+keyring, commit); !strings.Contains(out, "Good signature") {
		t.Fatalf("ostree show:\n%s", out)
	}
	s.fails(t, s.alice(t, "sign-ostree", "-o", "bad.commitmeta", "demo-rsa", strings.Repeat("0", 64), obj), "sign-ostree with a wrong hash", "")
	s.absent(t, "bad.commitmeta")
}
