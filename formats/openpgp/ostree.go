package openpgp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// OSTreeSignaturesKey is the detached metadata key under which OSTree keeps
// the binary OpenPGP signatures of a commit, as a variant of type aay.
const OSTreeSignaturesKey = "ostree.gpgsigs"

// ErrOSTreeHash reports an ostree-hash that CheckOSTreeHash refuses.
var ErrOSTreeHash = errors.New("openpgp: bad OSTree commit hash")

// CheckOSTreeHash checks the ostree-hash of a sign-ostree request against
// the commit object: it must consist of ASCII letters, digits and '.' only,
// must not start with '.' (it names files), and must be the SHA-256 of
// commit in lower-case hex, which is the commit's OSTree checksum. Its
// errors wrap ErrOSTreeHash.
func CheckOSTreeHash(commit []byte, hash string) error {
	if hash == "" {
		return fmt.Errorf("%w: empty hash", ErrOSTreeHash)
	}
	if hash[0] == '.' {
		return fmt.Errorf("%w: %.80q starts with '.'", ErrOSTreeHash, hash)
	}
	for _, c := range []byte(hash) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.') {
			return fmt.Errorf("%w: %.80q holds a character other than a letter, digit or '.'", ErrOSTreeHash, hash)
		}
	}
	sum := sha256.Sum256(commit)
	if got := hex.EncodeToString(sum[:]); got != hash {
		return fmt.Errorf("%w: the commit object's SHA-256 is %s, not %.80s", ErrOSTreeHash, got, hash)
	}
	return nil
}

// OSTreeCommitMeta returns the content of a commit's detached metadata file
// (objects/XX/YYYY.commitmeta beside objects/XX/YYYY.commit): a GVariant
// of type a{sv} in normal form whose "ostree.gpgsigs" entry is a variant of
// type aay, the list of binary detached OpenPGP signatures over the commit
// object. detachedSig (SignDetached(commit, false, ...): a single binary
// signature packet) is appended to the signatures of existing, the
// current .commitmeta content, which may be empty. Other entries of
// existing are kept as they are and in their order.
//
// It refuses a detachedSig that is not one OpenPGP signature packet
// (armored, say), and existing data that is not an a{sv} with at most one
// "ostree.gpgsigs" entry, of type aay.
func OSTreeCommitMeta(existing []byte, detachedSig []byte) ([]byte, error) {
	if err := checkSignaturePacket(detachedSig); err != nil {
		return nil, fmt.Errorf("openpgp: OSTree commit metadata: %w", err)
	}
	entries, index, sigs, err := parseCommitMeta(existing)
	if err != nil {
		return nil, fmt.Errorf("openpgp: OSTree commit metadata: %w", err)
	}
	value := gvDictEntry(OSTreeSignaturesKey, gvVariant("aay", gvArray(append(sigs, detachedSig), 1)))
	if index < 0 {
		entries = append(entries, value)
	} else {
		entries[index] = value
	}
	return gvArray(entries, gvVariantAlign), nil
}

// OSTreeCommitMetaSignatures returns the signatures in the "ostree.gpgsigs"
// entry of detached commit metadata (none if there is no such entry). It
// refuses data that OSTreeCommitMeta would refuse as existing metadata.
func OSTreeCommitMetaSignatures(meta []byte) ([][]byte, error) {
	_, _, sigs, err := parseCommitMeta(meta)
	if err != nil {
		return nil, fmt.Errorf("openpgp: OSTree commit metadata: %w", err)
	}
	return sigs, nil
}

// parseCommitMeta splits detached commit metadata into its serialised
// dictionary entries and returns the index of the "ostree.gpgsigs" entry
// (-1 if none) and the signatures in it.
func parseCommitMeta(meta []byte) (entries [][]byte, index int, sigs [][]byte, err error) {
	entries, err = gvParseArray(meta, gvVariantAlign)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("not a dictionary (a{sv}): %w", err)
	}
	index = -1
	for i, e := range entries {
		key, variant, err := gvParseDictEntry(e)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if key != OSTreeSignaturesKey {
			continue
		}
		if index >= 0 {
			return nil, 0, nil, fmt.Errorf("more than one %q entry", OSTreeSignaturesKey)
		}
		index = i
		typ, value, err := gvParseVariant(variant)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("%q: %w", key, err)
		}
		if typ != "aay" {
			return nil, 0, nil, fmt.Errorf("%q is of type %q, want \"aay\"", key, typ)
		}
		if sigs, err = gvParseArray(value, 1); err != nil {
			return nil, 0, nil, fmt.Errorf("%q: %w", key, err)
		}
	}
	return entries, index, sigs, nil
}

// checkSignaturePacket checks that sig is exactly one binary OpenPGP
// signature packet.
func checkSignaturePacket(sig []byte) error {
	pr := packet.NewReader(bytes.NewReader(sig))
	p, err := pr.Next()
	if err != nil {
		return fmt.Errorf("signature is not a binary OpenPGP signature packet: %v", err)
	}
	if _, ok := p.(*packet.Signature); !ok {
		return fmt.Errorf("signature is a %T packet, not a signature packet", p)
	}
	if _, err := pr.Next(); err != io.EOF {
		return errors.New("signature holds more than one packet")
	}
	return nil
}
