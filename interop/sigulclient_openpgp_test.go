package interop

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testOpenPGP: get-public-key, sign-data, sign-text, decrypt,
// sign-git-tag, sign-container and sign-ostree with Sigul's client,
// checked by gpg, git verify-tag, skopeo standalone-verify and ostree.
func (c *sc) testOpenPGP(t *testing.T) {
	needTools(t, "gpg", "git")
	rsa := []byte(c.ok(t, c.alice(t, "get-public-key", "demo-rsa"), "get-public-key").stdout)
	ed := []byte(c.ok(t, c.alice(t, "get-public-key", "demo-ed25519"), "get-public-key").stdout)
	home, env := gpgHome(t, rsa, ed)
	rsaFpr := fingerprint(t, rsa)

	// sign-data, binary and armored, RSA and Ed25519.
	data := c.write(t, "data.bin", bytes.Repeat([]byte("signet and Sigul\x00\xff"), 5000))
	for _, key := range []string{"demo-rsa", "demo-ed25519"} {
		sig := c.path(key + ".sig")
		c.ok(t, c.alice(t, "sign-data", "-o", sig, key, data), "sign-data")
		gpgVerify(t, env, sig, data)
		asc := c.path(key + ".asc")
		c.ok(t, c.alice(t, "sign-data", "-a", "-o", asc, key, data), "sign-data")
		if !bytes.HasPrefix(read(t, asc), []byte("-----BEGIN PGP SIGNATURE-----")) {
			t.Fatalf("sign-data -a %s: not armored:\n%s", key, read(t, asc))
		}
		gpgVerify(t, env, asc, data)
	}
	// Without -o the armored signature goes to standard output.
	r := c.ok(t, c.alice(t, "sign-data", "-a", "demo-rsa", data), "sign-data")
	gpgVerify(t, env, c.write(t, "stdout.asc", []byte(r.stdout)), data)
	// A changed file does not verify.
	changed := c.write(t, "data-changed.bin", append(read(t, data), '!'))
	if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--verify", c.path("demo-rsa.sig"), changed).CombinedOutput(); err == nil {
		t.Fatalf("gpg accepted a signature over a changed file:\n%s", out)
	}

	// sign-text: a cleartext signature gpg verifies.
	text := c.write(t, "text.txt", []byte("Release notes\n\n- one\n- two\n"))
	c.ok(t, c.alice(t, "sign-text", "-o", c.path("text.txt.asc"), "demo-rsa", text), "sign-text")
	clear := read(t, c.path("text.txt.asc"))
	if !bytes.HasPrefix(clear, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) || !bytes.Contains(clear, []byte("- two")) {
		t.Fatalf("sign-text: not a cleartext signature of the text:\n%s", clear)
	}
	gpgVerify(t, env, c.path("text.txt.asc"))

	// decrypt: gpg encrypts to demo-rsa, Sigul's client gets the plaintext
	// back through signet.
	plain := c.write(t, "secret.txt", []byte("for the signing key only\n"))
	tool(t, c.dir, env, "gpg", "--batch", "--trust-model", "always", "--encrypt", "--recipient", rsaFpr, "--output", c.path("secret.gpg"), plain)
	c.ok(t, c.alice(t, "decrypt", "-o", c.path("secret.out"), "demo-rsa", c.path("secret.gpg")), "decrypt")
	if !bytes.Equal(read(t, c.path("secret.out")), read(t, plain)) {
		t.Fatalf("decrypt: got %q", read(t, c.path("secret.out")))
	}
	fails(t, c.alice(t, "decrypt", "-o", c.path("secret-ed.out"), "demo-ed25519", c.path("secret.gpg")), "decrypt with another key", "Error")
	if _, err := os.Stat(c.path("secret-ed.out")); err == nil {
		t.Fatal("a refused decrypt left its output file behind")
	}

	// sign-git-tag: Sigul's client replaces the tag by a signed one in the
	// repository it runs in; git verify-tag accepts it.
	repo := c.path("repo")
	gitEnv := append([]string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org"}, env...)
	tool(t, c.dir, gitEnv, "git", "init", "-q", repo)
	tool(t, repo, gitEnv, "git", "commit", "-q", "--allow-empty", "-m", "first")
	tool(t, repo, gitEnv, "git", "tag", "-a", "-m", "release 1.0", "v1.0")
	c.ok(t, c.run(t, repo, "alice", []string{c.s.alicePass}, "sign-git-tag", "demo-rsa", "v1.0"), "sign-git-tag")
	if out := tool(t, repo, gitEnv, "git", "verify-tag", "--raw", "v1.0"); !strings.Contains(out, "GOODSIG") || !strings.Contains(out, rsaFpr) {
		t.Fatalf("git verify-tag:\n%s", out)
	}

	// sign-container (Sigul's argument order: key, manifest, reference):
	// skopeo accepts the signature for this manifest and reference only.
	needTools(t, "skopeo")
	manifest := c.write(t, "manifest.json", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",`+
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"},`+
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2811478,"digest":"sha256:0b3bca3c67bdc9a8ddc1b4e3fe34bd66e3f3e0b6a3f3d6ee3c2c1f6cdbd0a7c1"}]}`))
	ref := "registry.example.org/os/base:1.0"
	c.ok(t, c.alice(t, "sign-container", "-o", c.path("container.sig"), "demo-rsa", manifest, ref), "sign-container")
	if out := tool(t, c.dir, env, "skopeo", "standalone-verify", manifest, ref, rsaFpr, c.path("container.sig")); !strings.Contains(out, "Signature verified") {
		t.Fatalf("skopeo standalone-verify:\n%s", out)
	}
	if r := execute(t, c.dir, env, nil, "skopeo", "standalone-verify", manifest, "registry.example.org/os/other:1.0", rsaFpr, c.path("container.sig")); r.code == 0 {
		t.Fatalf("skopeo accepted the signature for another reference: %v", r)
	}

	// sign-ostree: the .commitmeta it writes beside a real commit is a good
	// signature to ostree.
	needTools(t, "ostree")
	ot := c.path("ostree")
	os.MkdirAll(filepath.Join(ot, "tree/usr/bin"), 0o755)
	os.WriteFile(filepath.Join(ot, "tree/usr/bin/hello"), []byte("#!/bin/sh\necho hello\n"), 0o755)
	tool(t, ot, nil, "ostree", "--repo=repo", "init", "--mode=archive")
	commit := strings.TrimSpace(tool(t, ot, nil, "ostree", "--repo=repo", "commit", "-b", "os/x86_64/stable", "--tree=dir=tree", "-s", "release 1"))
	obj := filepath.Join(ot, "repo/objects", commit[:2], commit[2:]+".commit")
	c.ok(t, c.alice(t, "sign-ostree", "-o", obj+"meta", "demo-rsa", commit, obj), "sign-ostree")
	keyring := c.path("ostree-keys")
	os.Mkdir(keyring, 0o700)
	dearmor := exec.Command("gpg", "--dearmor")
	dearmor.Stdin = bytes.NewReader(rsa)
	bin, err := dearmor.Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(keyring, "pubring.gpg"), bin, 0o600)
	if out := tool(t, ot, nil, "ostree", "--repo=repo", "show", "--gpg-homedir="+keyring, commit); !strings.Contains(out, "Good signature") {
		t.Fatalf("ostree show:\n%s", out)
	}
	fails(t, c.alice(t, "sign-ostree", "-o", c.path("bad.commitmeta"), "demo-rsa", strings.Repeat("0", 64), obj), "sign-ostree with a wrong hash", "Error")
	if _, err := os.Stat(c.path("bad.commitmeta")); err == nil {
		t.Fatal("a refused sign-ostree left its output file behind")
	}
}
