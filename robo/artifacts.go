package robo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/signet-project/signet/client"
)

// decodeObject decodes a JSON object body twice: into a generic map (to
// echo it back) and into v (to read it).
func decodeObject(body []byte, v any) (map[string]any, error) {
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, malformed("the body is not a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, malformed("the body does not have the expected shape: %v", err)
	}
	return obj, nil
}

// withStatus returns the request body (a JSON object) with status
// SUCCESS or FAILURE and, on failure, failure-message.
func withStatus(body []byte, ok bool, failureMessage string) map[string]any {
	var obj map[string]any
	json.Unmarshal(body, &obj)
	if obj == nil {
		obj = map[string]any{}
	}
	obj["status"] = "SUCCESS"
	if !ok {
		obj["status"] = "FAILURE"
		obj["failure-message"] = failureMessage
	}
	return obj
}

// handleArtifacts handles a CoreOS artifacts-sign request: every artifact
// is fetched, checked against its checksum and signed (a detached
// OpenPGP signature), and the signature stored beside it. The first
// failure ends the request with status FAILURE.
func (r *Robo) handleArtifacts(ctx context.Context, m *Message) (any, bool, error) {
	var req struct {
		Artifacts []*artifactRef `json:"artifacts"`
	}
	if _, err := decodeObject(m.Body, &req); err != nil {
		return nil, false, err
	}
	if len(req.Artifacts) == 0 {
		return nil, false, malformed("no artifacts")
	}
	for _, a := range req.Artifacts {
		if a == nil {
			return nil, false, malformed("an artifact is null")
		}
		if err := a.check(); err != nil {
			return nil, false, err
		}
	}
	kc := &r.cfg.Artifacts
	log := r.log.With("message_id", m.ID, "kind", m.Kind)
	for _, a := range req.Artifacts {
		err := r.signArtifact(ctx, log, kc, a)
		if isFailure(err) {
			r.m.artifacts.WithLabelValues(m.Kind, "failed").Inc()
			log.Warn("artifact failed", "artifact", a.File, "err", err)
			return withStatus(m.Body, false, err.Error()), false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	return withStatus(m.Body, true, ""), true, nil
}

// signArtifact signs one artifact unless its signature target already
// holds a valid signature by the key over it.
func (r *Robo) signArtifact(ctx context.Context, log *slog.Logger, kc *KindConfig, a *artifactRef) error {
	src, err := r.fetch(ctx, kc, a, false)
	if err != nil {
		return err
	}
	defer src.Close()
	t := sigTarget(kc, a)
	old, err := r.read(withPolicy(ctx, kc.sources), t)
	if err != nil {
		return fmt.Errorf("reading the existing signature %s: %w", t, err)
	}
	if old != nil {
		keyring, err := r.keyring(ctx, kc.Key)
		if err != nil {
			return err
		}
		if verifyDetached(keyring, src, old) == nil {
			r.m.artifacts.WithLabelValues(KindArtifacts, "skipped").Inc()
			log.Info("artifact already signed by the key; not signed again", "artifact", a.File, "signature", t.String())
			return nil
		}
		if err := src.rewind(); err != nil {
			return err
		}
	}
	h := sha256.New()
	var sig bytes.Buffer
	if err := r.signer.SignData(ctx, client.SignDataRequest{Key: kc.Key, Armor: kc.Armor, Passphrase: r.passphrase(kc.Key), In: io.TeeReader(src, h), Size: src.size}, &sig); err != nil {
		if isTransient(err) {
			return fmt.Errorf("signing %s: %w", a.File, err)
		}
		return failf("signing %s: %v", a.File, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != a.sha256 {
		return failf("%s changed while it was being signed", a.File)
	}
	if err := r.store(ctx, t, sig.Bytes()); err != nil {
		return err
	}
	r.m.artifacts.WithLabelValues(KindArtifacts, "signed").Inc()
	log.Info("artifact signed", "artifact", a.File, "signature", t.String())
	return nil
}

// keyring returns key's public certificate, fetched once through the
// service.
func (r *Robo) keyring(ctx context.Context, key string) (openpgp.EntityList, error) {
	r.pubMu.Lock()
	pub, ok := r.pubKeys[key]
	r.pubMu.Unlock()
	if !ok {
		var buf bytes.Buffer
		if err := r.signer.GetPublicKey(ctx, client.GetPublicKeyRequest{Key: key, Auth: client.Auth{Passphrase: r.passphrase(key)}}, &buf); err != nil {
			return nil, fmt.Errorf("fetching the public key of %s: %w", key, err)
		}
		pub = buf.Bytes()
		r.pubMu.Lock()
		r.pubKeys[key] = pub
		r.pubMu.Unlock()
	}
	kr, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	if err != nil {
		kr, err = openpgp.ReadKeyRing(bytes.NewReader(pub))
	}
	if err != nil {
		return nil, failf("the public key of %s does not parse: %v", key, err)
	}
	return kr, nil
}

// verifyDetached checks a detached signature, armored or binary, over
// signed by a key of keyring.
func verifyDetached(keyring openpgp.EntityList, signed io.Reader, sig []byte) error {
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN PGP SIGNATURE-----")) {
		_, err = openpgp.CheckArmoredDetachedSignature(keyring, signed, bytes.NewReader(sig), nil)
	} else {
		_, err = openpgp.CheckDetachedSignature(keyring, signed, bytes.NewReader(sig), nil)
	}
	return err
}
