package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/protocol"
)

// creator is what container signatures name as their creator
// (optional.creator).
const creator = "signet"

// maxSmallPayload bounds the payloads the OpenPGP operations below hold in
// memory: git tags, container manifests and OSTree commit objects are
// small.
const maxSmallPayload = 16 << 20

// readSmall reads a request payload that must fit in memory.
func readSmall(r *Request, what string) ([]byte, error) {
	if r.PayloadSize > maxSmallPayload {
		return nil, &refusal{status: protocol.CodeUnknownError, message: fmt.Sprintf("%s of %d bytes is larger than %d bytes", what, r.PayloadSize, maxSmallPayload)}
	}
	return io.ReadAll(io.LimitReader(r.Payload, r.PayloadSize))
}

// keyUserPGP authenticates the key user and returns the key's OpenPGP
// identity (UNSUPPORTED_KEYTYPE for a key without one).
func (h *Handlers) keyUserPGP(ctx context.Context, r *Request) (*openpgp.Key, KeyAccess, error) {
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, ka, err
	}
	pk, err := h.openpgpKey(ka)
	if err != nil {
		clear(ka.PIN)
		return nil, ka, err
	}
	return pk, ka, nil
}

// decrypt decrypts an OpenPGP message encrypted to the key. The plaintext
// is written to an unlinked file and sent only if the whole message
// decrypted and passed its integrity check; otherwise the reply is
// DECRYPT_FAILED (15) with an empty payload, as §8.3 asks of new servers.
func (h *Handlers) decrypt(ctx context.Context, r *Request) (*Response, error) {
	pk, ka, err := h.keyUserPGP(ctx, r)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	hk, err := h.signer(ka)
	if err != nil {
		return nil, err
	}
	if !hk.Type().IsRSA() {
		return nil, &refusal{status: protocol.CodeUnsupportedKeytype, message: fmt.Sprintf("key %s is %v: only RSA keys decrypt", ka.Key.Name, hk.Type())}
	}
	// Compressed data may expand without bound: the plaintext may not be
	// larger than the largest payload the server accepts.
	f, n, err := spoolOutput(h.SpoolDir, func(w io.Writer) error {
		return openpgp.Decrypt(&limitedWriter{w: w, n: maxPlaintext}, r.Payload, pk, hk)
	})
	if err != nil {
		if errors.Is(err, openpgp.ErrDecrypt) || errors.Is(err, errTooMuchPlaintext) {
			return nil, &refusal{status: protocol.CodeDecryptFailed, message: err.Error()}
		}
		return nil, err
	}
	return &Response{Payload: f, PayloadSize: n}, nil
}

// maxPlaintext bounds a decrypted message.
const maxPlaintext = 1 << 30

var errTooMuchPlaintext = errors.New("the decrypted message is larger than 1 GiB")

type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, errTooMuchPlaintext
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// signGitTag returns an armored detached signature over an annotated tag
// object, which the client appends to the tag.
func (h *Handlers) signGitTag(ctx context.Context, r *Request) (*Response, error) {
	tag, err := readSmall(r, "the tag object")
	if err != nil {
		return nil, err
	}
	if err := openpgp.CheckGitTag(tag); err != nil {
		return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
	}
	pk, ka, err := h.keyUserPGP(ctx, r)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	sig, err := pk.SignDetachedArmored(bytes.NewReader(tag), false, h.now())
	if err != nil {
		return nil, err
	}
	return withPayload(sig), nil
}

// signContainer signs the "atomic container signature" document for an
// image manifest and a docker reference, as an OpenPGP signed message.
func (h *Handlers) signContainer(ctx context.Context, r *Request) (*Response, error) {
	ref, err := str(r, "docker-reference")
	if err != nil {
		return nil, err
	}
	manifest, err := readSmall(r, "the image manifest")
	if err != nil {
		return nil, err
	}
	now := h.now()
	doc, err := openpgp.ContainerSignatureDocument(bytes.NewReader(manifest), ref, creator, now)
	if err != nil {
		return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
	}
	pk, ka, err := h.keyUserPGP(ctx, r)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	msg, err := pk.SignMessage(bytes.NewReader(doc), now)
	if err != nil {
		return nil, err
	}
	resp := withPayload(msg)
	resp.Audit = fmt.Sprintf("docker-reference=%q", ref)
	return resp, nil
}

// signOSTree signs an OSTree commit object and returns its .commitmeta.
func (h *Handlers) signOSTree(ctx context.Context, r *Request) (*Response, error) {
	hash, err := str(r, "ostree-hash")
	if err != nil {
		return nil, err
	}
	commit, err := readSmall(r, "the commit object")
	if err != nil {
		return nil, err
	}
	if err := openpgp.CheckOSTreeHash(commit, hash); err != nil {
		return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
	}
	pk, ka, err := h.keyUserPGP(ctx, r)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	sig, err := pk.SignDetached(bytes.NewReader(commit), false, h.now())
	if err != nil {
		return nil, err
	}
	meta, err := openpgp.OSTreeCommitMeta(nil, sig)
	if err != nil {
		return nil, err
	}
	resp := withPayload(meta)
	resp.Audit = "ostree-commit=" + hash
	return resp, nil
}
