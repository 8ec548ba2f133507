package openpgp

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testenv"
)

func TestCheckOSTreeHash(t *testing.T) {
	commit := []byte("commit object")
	sum := sha256.Sum256(commit)
	hash := hex.EncodeToString(sum[:])
	if err := CheckOSTreeHash(commit, hash); err != nil {
		t.Errorf("good hash: %v", err)
	}
	for _, c := range []struct{ name, hash, want string }{
		{"empty", "", "empty hash"},
		{"dot first", "." + hash[1:], "starts with '.'"},
		{"path", "../" + hash, "starts with '.'"},
		{"slash", hash[:2] + "/" + hash[2:], "other than a letter, digit or '.'"},
		{"space", hash + " ", "other than a letter, digit or '.'"},
		{"non-ASCII letter", "é" + hash, "other than a letter, digit or '.'"},
		{"upper case", strings.ToUpper(hash), "SHA-256 is " + hash},
		{"other commit", strings.Repeat("0", 64), "SHA-256 is " + hash},
		{"with suffix", hash + ".commit", "SHA-256 is " + hash},
	} {
		if err := CheckOSTreeHash(commit, c.hash); !errors.Is(err, ErrOSTreeHash) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrOSTreeHash containing %q", c.name, err, c.want)
		}
	}
}

// TestGVariantSerialisation checks the serialiser against the example of an
// array of strings in the GVariant specification and at the offset size
// boundaries.
func TestGVariantSerialisation(t *testing.T) {
	strs := [][]byte{[]byte("i\x00"), []byte("can\x00"), []byte("has\x00"), []byte("strings?\x00")}
	want := []byte{'i', 0, 'c', 'a', 'n', 0, 'h', 'a', 's', 0, 's', 't', 'r', 'i', 'n', 'g', 's', '?', 0, 0x02, 0x06, 0x0a, 0x13}
	if got := gvArray(strs, 1); !bytes.Equal(got, want) {
		t.Errorf("as example: % x, want % x", got, want)
	}
	if got := gvArray(nil, 1); len(got) != 0 {
		t.Errorf("empty array: % x", got)
	}
	for _, c := range []struct {
		elems      []int // element sizes
		align      int
		offsetSize int
	}{
		{[]int{254}, 1, 1},
		{[]int{255}, 1, 2},
		{[]int{100, 100, 52}, 1, 1}, // 252 + 3 = 255
		{[]int{100, 100, 53}, 1, 2},
		{[]int{65533}, 1, 2},
		{[]int{65534}, 1, 4},
		{[]int{1, 1, 1}, 8, 1}, // padded to 17 bytes
		{[]int{0, 0, 0}, 1, 1},
	} {
		var elems [][]byte
		for i, n := range c.elems {
			e := bytes.Repeat([]byte{byte(i + 1)}, n)
			elems = append(elems, e)
		}
		b := gvArray(elems, c.align)
		body := 0
		for _, n := range c.elems {
			body += (c.align - body%c.align) % c.align
			body += n
		}
		if got := (len(b) - body) / len(c.elems); got != c.offsetSize || (len(b)-body)%len(c.elems) != 0 {
			t.Errorf("elements %v: %d bytes for a body of %d, want offsets of %d bytes", c.elems, len(b), body, c.offsetSize)
		}
		back, err := gvParseArray(b, c.align)
		if err != nil || len(back) != len(elems) {
			t.Fatalf("elements %v: parsed into %d elements (%v)", c.elems, len(back), err)
		}
		for i := range back {
			if !bytes.Equal(back[i], elems[i]) {
				t.Errorf("elements %v: element %d differs", c.elems, i)
			}
		}
	}
}

func testOSTreeSig(t *testing.T, k *Key, data []byte) []byte {
	t.Helper()
	sig, err := k.SignDetached(bytes.NewReader(data), false, testSigTime)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestOSTreeCommitMeta(t *testing.T) {
	k := mustKey(t)
	ed, _ := NewKey(testSigners()[4].signer, testCreated)
	// The Ed25519 signature is short enough for one-byte offsets.
	sig1, sig2 := testOSTreeSig(t, ed, []byte("commit")), testOSTreeSig(t, k, []byte("commit"))

	meta, err := OSTreeCommitMeta(nil, sig1)
	if err != nil {
		t.Fatal(err)
	}
	// {"ostree.gpgsigs": <[sig1]>}: the key, padding to 16, the variant
	// (sig1, its end offset, NUL, "aay"), the key's end offset; then the
	// array's one offset.
	entry := append([]byte("ostree.gpgsigs\x00\x00"), sig1...)
	entry = append(entry, byte(len(sig1)), 0, 'a', 'a', 'y')
	entry = append(entry, 15)
	if len(entry) > 255 {
		t.Fatalf("signature of %d bytes: the expected encoding needs larger offsets", len(sig1))
	}
	want := append(entry, byte(len(entry)))
	if !bytes.Equal(meta, want) {
		t.Errorf("commitmeta\n% x\nwant\n% x", meta, want)
	}

	meta2, err := OSTreeCommitMeta(meta, sig2)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := OSTreeCommitMetaSignatures(meta2)
	if err != nil || len(sigs) != 2 || !bytes.Equal(sigs[0], sig1) || !bytes.Equal(sigs[1], sig2) {
		t.Errorf("signatures after appending: %d (%v)", len(sigs), err)
	}
	if sigs, err := OSTreeCommitMetaSignatures(nil); err != nil || len(sigs) != 0 {
		t.Errorf("empty metadata: %d signatures (%v)", len(sigs), err)
	}

	// Other entries are kept, in their order, and the signatures are
	// replaced where they were.
	other := gvDictEntry("xa.note", gvVariant("s", []byte("a note\x00")))
	last := gvDictEntry("z.last", gvVariant("ay", []byte{1, 2, 3}))
	existing := gvArray([][]byte{other, gvDictEntry(OSTreeSignaturesKey, gvVariant("aay", gvArray([][]byte{sig1}, 1))), last}, 8)
	meta3, err := OSTreeCommitMeta(existing, sig2)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := gvParseArray(meta3, 8)
	if err != nil || len(entries) != 3 || !bytes.Equal(entries[0], other) || !bytes.Equal(entries[2], last) {
		t.Errorf("other entries not kept: %d entries (%v)", len(entries), err)
	}
	if sigs, err := OSTreeCommitMetaSignatures(meta3); err != nil || len(sigs) != 2 {
		t.Errorf("signatures among other entries: %d (%v)", len(sigs), err)
	}
	if got, _ := OSTreeCommitMeta(gvArray([][]byte{other}, 8), sig1); !bytes.Equal(got, gvArray([][]byte{other, entry}, 8)) {
		t.Errorf("signatures not added after the other entry")
	}

	armored, _ := Armor(sig1, "PGP SIGNATURE")
	for _, c := range []struct {
		name          string
		existing, sig []byte
		want          string
	}{
		{"empty signature", nil, nil, "not a binary OpenPGP signature packet"},
		{"armored signature", nil, armored, "not a binary OpenPGP signature packet"},
		{"two signatures", nil, append(bytes.Clone(sig1), sig2...), "more than one packet"},
		{"certificate", nil, mustCert(t, k), "*packet.PublicKey packet"},
		{"signatures of another type", gvArray([][]byte{gvDictEntry(OSTreeSignaturesKey, gvVariant("as", []byte("x\x00\x02")))}, 8), sig1, `"ostree.gpgsigs" is of type "as"`},
		{"two signature entries", gvArray([][]byte{entry, entry}, 8), sig1, "more than one"},
		{"garbage", []byte("garbage!"), sig1, "not a dictionary"},
		{"key without NUL", gvArray([][]byte{append([]byte("key\x00\x00\x00\x00\x00\x00aay"), 3)}, 8), sig1, "is not a string"},
		{"truncated", meta[:len(meta)-2], sig1, "malformed GVariant"},
	} {
		_, err := OSTreeCommitMeta(c.existing, c.sig)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}

	// No input makes the parser panic: every truncation and one-byte
	// change of the metadata, and random data.
	for i := range len(meta2) {
		OSTreeCommitMetaSignatures(meta2[:i])
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(meta2)
			b[i] ^= x
			OSTreeCommitMetaSignatures(b)
		}
	}
	for range 1000 {
		b := make([]byte, 1+len(meta2)%64)
		rand.Read(b)
		OSTreeCommitMetaSignatures(b)
	}
}

func FuzzOSTreeCommitMetaSignatures(f *testing.F) {
	f.Add([]byte{})
	f.Add(gvArray([][]byte{gvDictEntry(OSTreeSignaturesKey, gvVariant("aay", gvArray([][]byte{[]byte("sig"), nil}, 1)))}, 8))
	f.Fuzz(func(t *testing.T, meta []byte) {
		sigs, err := OSTreeCommitMetaSignatures(meta)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses the same.
		again := gvArray(nil, 8)
		if len(sigs) > 0 {
			again = gvArray([][]byte{gvDictEntry(OSTreeSignaturesKey, gvVariant("aay", gvArray(sigs, 1)))}, 8)
		}
		back, err := OSTreeCommitMetaSignatures(again)
		if err != nil || len(back) != len(sigs) {
			t.Fatalf("re-encoded %d signatures parse into %d (%v)", len(sigs), len(back), err)
		}
	})
}

// TestOSTreeWithOSTree signs a commit of a real OSTree repository, writes
// the .commitmeta that OSTreeCommitMeta makes, and has ostree verify it,
// with one and then two signatures. ostree gpg-sign (GLib's serialiser)
// signs the same commit with a gpg key: OSTreeCommitMeta must give the
// same bytes for the same signatures, and each side must read the other's
// metadata.
func TestOSTreeWithOSTree(t *testing.T) {
	testenv.MustHave(t, "ostree")
	testenv.MustHave(t, "gpg")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	ostree := func(args ...string) (string, error) {
		out, err := exec.Command("ostree", append([]string{"--repo=" + repo}, args...)...).CombinedOutput()
		return string(out), err
	}
	mustOSTree := func(args ...string) string {
		t.Helper()
		out, err := ostree(args...)
		if err != nil {
			t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755)
	writeFile(t, tree, "usr/bin/hello", []byte("#!/bin/sh\necho hello\n"))
	writeFile(t, tree, "README", []byte("a tree\n"))
	mustOSTree("init", "--mode=archive")
	checksum := strings.TrimSpace(mustOSTree("commit", "--branch=main", "--subject=signet test", "--tree=dir="+tree))
	objects := filepath.Join(repo, "objects", checksum[:2], checksum[2:])
	commit, err := os.ReadFile(objects + ".commit")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckOSTreeHash(commit, checksum); err != nil {
		t.Fatalf("the commit's checksum %s: %v", checksum, err)
	}

	// The keyring directory that ostree show --gpg-homedir reads (*.gpg).
	keys := filepath.Join(dir, "keys")
	os.Mkdir(keys, 0o700)
	k := mustKey(t)
	ed, _ := NewKey(testSigners()[4].signer, testCreated)
	for i, key := range []*Key{k, ed} {
		writeFile(t, keys, fmt.Sprintf("key%d.gpg", i), mustCert(t, key))
	}
	verify := func(meta []byte) (string, error) {
		t.Helper()
		if err := os.WriteFile(objects+".commitmeta", meta, 0o644); err != nil {
			t.Fatal(err)
		}
		return ostree("show", "--gpg-homedir="+keys, checksum)
	}

	sig1 := testOSTreeSig(t, k, commit)
	meta, err := OSTreeCommitMeta(nil, sig1)
	if err != nil {
		t.Fatal(err)
	}
	out, err := verify(meta)
	if err != nil || !strings.Contains(out, "Found 1 signature:") || strings.Count(out, `Good signature from "`+testUID+`"`) != 1 {
		t.Errorf("ostree show, one signature (err %v):\n%s", err, out)
	}
	meta2, err := OSTreeCommitMeta(meta, testOSTreeSig(t, ed, commit))
	if err != nil {
		t.Fatal(err)
	}
	out, err = verify(meta2)
	if err != nil || !strings.Contains(out, "Found 2 signatures:") || strings.Count(out, `Good signature from "`+testUID+`"`) != 2 {
		t.Errorf("ostree show, two signatures (err %v):\n%s", err, out)
	}
	// A signature over other data is reported as bad.
	out, err = verify(mustMeta(t, meta, testOSTreeSig(t, ed, append(bytes.Clone(commit), 0))))
	if !strings.Contains(out, "BAD signature") {
		t.Errorf("ostree show, a bad second signature (err %v):\n%s", err, out)
	}

	// ostree gpg-sign with a key of gpg's own, first alone, then on top of
	// metadata from OSTreeCommitMeta.
	home := gpgHome(t)
	gpg(t, home, "--passphrase", "", "--quick-gen-key", "OSTree <ostree@example.org>", "ed25519", "sign", "never")
	fpr := colons(gpg(t, home, "--with-colons", "--fingerprint", "=OSTree <ostree@example.org>"), "fpr")[0][9]
	writeFile(t, keys, "gpg.gpg", []byte(gpg(t, home, "--export", fpr)))
	gpgSign := func(existing []byte) []byte {
		t.Helper()
		meta := objects + ".commitmeta"
		os.Remove(meta)
		if existing != nil {
			writeFile(t, filepath.Dir(meta), filepath.Base(meta), existing)
		}
		mustOSTree("gpg-sign", "--gpg-homedir="+home, checksum, fpr)
		b, err := os.ReadFile(meta)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	glib := gpgSign(nil)
	sigs, err := OSTreeCommitMetaSignatures(glib)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("ostree gpg-sign's metadata: %d signatures (%v)", len(sigs), err)
	}
	if ours := mustMeta(t, nil, sigs[0]); !bytes.Equal(ours, glib) {
		t.Errorf("metadata for ostree gpg-sign's signature\n% x\ndiffers from ostree's\n% x", ours, glib)
	}
	glib3 := gpgSign(meta2)
	sigs, err = OSTreeCommitMetaSignatures(glib3)
	if err != nil || len(sigs) != 3 {
		t.Fatalf("ostree gpg-sign on our metadata: %d signatures (%v)", len(sigs), err)
	}
	if ours := mustMeta(t, meta2, sigs[2]); !bytes.Equal(ours, glib3) {
		t.Errorf("metadata with three signatures\n% x\ndiffers from ostree's\n% x", ours, glib3)
	}
	out, err = verify(mustMeta(t, glib, sig1))
	if err != nil || !strings.Contains(out, "Found 2 signatures:") || strings.Count(out, "Good signature from") != 2 {
		t.Errorf("ostree show, our signature after ostree's (err %v):\n%s", err, out)
	}
}

func mustMeta(t *testing.T, existing, sig []byte) []byte {
	t.Helper()
	meta, err := OSTreeCommitMeta(existing, sig)
	if err != nil {
		t.Fatal(err)
	}
	return meta
}
