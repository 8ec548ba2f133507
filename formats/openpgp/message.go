package openpgp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// SignMessage returns a binary OpenPGP signed message holding everything
// read from r, as gpg --sign --compress-algo none writes it: a one-pass
// signature packet, a literal data packet (binary, no file name, dated
// sigTime) and a v4 binary (0x00) signature packet made at sigTime (now if
// zero) with Key.Hash. gpg --decrypt and gpgme give the data back and
// verify the signature. The data is held in memory. It refuses a sigTime
// before the key's creation time.
func (k *Key) SignMessage(r io.Reader, sigTime time.Time) ([]byte, error) {
	if sigTime.IsZero() {
		sigTime = time.Now() // the literal data packet is dated with it too
	}
	var data bytes.Buffer
	sig, err := k.signature(byte(BinarySignature), k.hash, sigTime, nil, func(w io.Writer) error {
		if _, err := io.Copy(io.MultiWriter(w, &data), r); err != nil {
			return fmt.Errorf("reading data: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("openpgp: signing with key %s: %w", k.FingerprintHex(), err)
	}

	// One-pass signature (RFC 4880 section 5.4): version 3, the signature's
	// type and algorithms, the issuer key id and 1 for "not nested".
	ops := []byte{3, byte(BinarySignature), hashIDs[k.hash], k.algo}
	ops = append(ops, k.fp[12:]...)
	ops = append(ops, 1)
	// Literal data (RFC 4880 section 5.9): 'b' for binary, an empty file
	// name and a date.
	lit := make([]byte, 0, 6+data.Len())
	lit = append(lit, 'b', 0)
	lit = binary.BigEndian.AppendUint32(lit, uint32(sigTime.Unix())) // checked by signature
	lit = append(lit, data.Bytes()...)

	out := appendPacket(nil, 4, ops)
	out = appendPacket(out, 11, lit)
	return append(out, sig...), nil
}

// ContainerSignatureType is the critical.type of a container image
// signature (containers-signature(5), "simple signing").
const ContainerSignatureType = "atomic container signature"

// ContainerSignatureDocument returns the JSON document that a container
// image signature signs (containers-signature(5)):
//
//	{"critical":{"type":"atomic container signature",
//	             "image":{"docker-manifest-digest":"sha256:<hex>"},
//	             "identity":{"docker-reference":"<dockerReference>"}},
//	 "optional":{"creator":"<creator>","timestamp":<Unix time of t>}}
//
// on one line, where <hex> is the SHA-256 of the manifest bytes as read
// (the image's digest for a docker v2 schema 2 or OCI manifest). Sigul puts
// "Sigul <version>" in creator; an empty creator is left out. A zero t is
// now. Sign the document with SignMessage; skopeo, podman and
// containers/image verify the result against the manifest and reference.
// It refuses an empty docker reference and one or a creator that is not
// UTF-8 (JSON cannot carry it unchanged).
func ContainerSignatureDocument(manifest io.Reader, dockerReference, creator string, t time.Time) ([]byte, error) {
	if dockerReference == "" {
		return nil, errors.New("openpgp: container signature: empty docker reference")
	}
	if !utf8.ValidString(dockerReference) || !utf8.ValidString(creator) {
		return nil, fmt.Errorf("openpgp: container signature: docker reference %q or creator %q is not UTF-8", dockerReference, creator)
	}
	h := sha256.New()
	if _, err := io.Copy(h, manifest); err != nil {
		return nil, fmt.Errorf("openpgp: container signature: reading the manifest: %w", err)
	}
	if t.IsZero() {
		t = time.Now()
	}
	var doc containerSignature
	doc.Critical.Type = ContainerSignatureType
	doc.Critical.Image.DockerManifestDigest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	doc.Critical.Identity.DockerReference = dockerReference
	doc.Optional.Creator = creator
	doc.Optional.Timestamp = t.Unix()

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<version>" stays as it is
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("openpgp: container signature: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// containerSignature is the JSON document of containers-signature(5).
type containerSignature struct {
	Critical struct {
		Type  string `json:"type"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
	} `json:"critical"`
	Optional struct {
		Creator   string `json:"creator,omitempty"`
		Timestamp int64  `json:"timestamp"`
	} `json:"optional"`
}
