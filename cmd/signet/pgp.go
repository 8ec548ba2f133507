package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/formats/openpgp"
)

// pgpCommands are Sigul's remaining OpenPGP operations: decrypt,
// sign-git-tag, sign-container and sign-ostree.
func (a *app) pgpCommands() []*cobra.Command {
	var decOut string
	dec := &cobra.Command{Use: "decrypt [options] KEY FILE", Short: "Decrypt an OpenPGP message encrypted to a key",
		Args: nargs(2, "key name and input file path"),
		RunE: func(_ *cobra.Command, args []string) error {
			if decOut == "" && a.stdoutIsTTY() {
				return usagef("won't write output to a TTY, specify a file name")
			}
			if err := a.connect(); err != nil {
				return err
			}
			// Plaintext: only the user may read the file.
			return a.signMode(args, decOut, 0o600, func(pass []byte, in io.Reader, size int64, w io.Writer) error {
				return a.client.Decrypt(a.ctx, client.DecryptRequest{Key: args[0], Passphrase: pass, In: in, Size: size}, w)
			})
		}}
	dec.Flags().StringVarP(&decOut, "output", "o", "", "Write the plaintext to this file")

	tag := &cobra.Command{Use: "sign-git-tag [options] KEY TAG", Short: "Sign an annotated git tag in the current repository",
		Long: `Sign the annotated tag TAG of the git repository in the current directory:
the tag object (without any signature it carries) is signed on the server,
a new tag object with the signature is made with git mktag, and the tag is
moved to it. git verify-tag then checks it.`,
		Args: nargs(2, "key name and tag name"),
		RunE: func(_ *cobra.Command, args []string) error {
			ref := "refs/tags/" + strings.TrimPrefix(args[1], "refs/tags/")
			old, err := git(nil, "rev-parse", "--verify", "--quiet", ref)
			if err != nil {
				return fmt.Errorf("no tag %s in this repository", args[1])
			}
			if t, err := git(nil, "cat-file", "-t", old); err != nil || t != "tag" {
				return fmt.Errorf("%s is a lightweight tag: only annotated tags (git tag -a) can be signed", args[1])
			}
			obj, err := git(nil, "cat-file", "tag", old)
			if err != nil {
				return err
			}
			body := unsignedTag([]byte(obj + "\n"))
			if err := a.connect(); err != nil {
				return err
			}
			pass, err := a.keyPassphrase()
			if err != nil {
				return err
			}
			var sig bytes.Buffer
			if err := a.client.SignGitTag(a.ctx, client.SignGitTagRequest{Key: args[0], Passphrase: pass, Tag: body}, &sig); err != nil {
				return err
			}
			id, err := git(openpgp.AppendGitTagSignature(body, sig.Bytes()), "mktag")
			if err != nil {
				return err
			}
			_, err = git(nil, "update-ref", "-m", "signet sign-git-tag", ref, id, old)
			return err
		}}

	var ctOut string
	ct := &cobra.Command{Use: "sign-container [options] KEY MANIFEST DOCKER-REFERENCE", Short: "Sign a container image manifest",
		Long: `Make an "atomic container signature" (as containers/image and skopeo verify
it) stating that the image with the manifest MANIFEST is
DOCKER-REFERENCE (e.g. registry.example.org/os/base:9). The arguments
come in Sigul's order; signet's earlier order, DOCKER-REFERENCE before
MANIFEST, is still understood when only the last argument is a file.`,
		Args: nargs(3, "key name, manifest file and tag name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if ctOut == "" && a.stdoutIsTTY() {
				return usagef("won't write output to a TTY, specify a file name")
			}
			manifest, ref := args[1], args[2]
			if !isFile(manifest) && isFile(ref) {
				manifest, ref = ref, manifest
				fmt.Fprintf(a.stderr, "signet: note: taking %s as the manifest and %s as the reference; Sigul's order is KEY MANIFEST DOCKER-REFERENCE\n", manifest, ref)
			}
			if err := a.connect(); err != nil {
				return err
			}
			return a.sign([]string{args[0], manifest}, ctOut, func(pass []byte, in io.Reader, size int64, w io.Writer) error {
				return a.client.SignContainer(a.ctx, client.SignContainerRequest{Key: args[0], DockerReference: ref, Passphrase: pass, In: in, Size: size}, w)
			})
		}}
	ct.Flags().StringVarP(&ctOut, "output", "o", "", "Write output to this file")

	var otOut string
	ot := &cobra.Command{Use: "sign-ostree [options] KEY HASH COMMIT-FILE", Short: "Sign an OSTree commit",
		Long: `Sign the OSTree commit object COMMIT-FILE (objects/xx/yyy.commit in the
repository), whose checksum is HASH, and write its .commitmeta, holding
the signature, to --output (objects/xx/yyy.commitmeta).`,
		Args: nargs(3, "key name, commit hash and input file path"),
		RunE: func(_ *cobra.Command, args []string) error {
			if otOut == "" && a.stdoutIsTTY() {
				return usagef("won't write output to a TTY, specify a file name")
			}
			if err := a.connect(); err != nil {
				return err
			}
			return a.sign([]string{args[0], args[2]}, otOut, func(pass []byte, in io.Reader, size int64, w io.Writer) error {
				return a.client.SignOSTree(a.ctx, client.SignOSTreeRequest{Key: args[0], Hash: args[1], Passphrase: pass, In: in, Size: size}, w)
			})
		}}
	ot.Flags().StringVarP(&otOut, "output", "o", "", "Write the .commitmeta to this file")
	return []*cobra.Command{dec, tag, ct, ot}
}

// git runs git in the current directory with stdin and returns its output
// without the final newline.
func git(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

// unsignedTag drops a signature block from the end of a tag object, so a
// signed tag can be signed again.
func unsignedTag(tag []byte) []byte {
	for _, marker := range []string{"-----BEGIN PGP SIGNATURE-----", "-----BEGIN SSH SIGNATURE-----", "-----BEGIN SIGNED MESSAGE-----"} {
		if i := bytes.Index(tag, []byte("\n"+marker)); i >= 0 {
			return tag[:i+1]
		}
	}
	return tag
}

// isFile reports whether path names an existing regular file.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
