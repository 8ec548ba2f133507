// This file holds the ceremony's key lifecycle: generate, import, find
// (checked against the database) and delete.

package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server/store"
)

// NewKeyRequest describes a key to generate or import.
type NewKeyRequest struct {
	Name string
	// Type is the key type to generate; ignored by ImportKey.
	Type hsm.KeyType
	// UserIDs, if any, make an OpenPGP certificate now and store it.
	UserIDs []string
	// Expires, if set, is the key expiration time in that certificate.
	Expires time.Time
	// Owner, if set, is granted access to the new key as key admin, with
	// OwnerPassphrase as their passphrase for it.
	Owner           string
	OwnerPassphrase []byte
	// Backup generates the key so that it can be backed up: see
	// hsm.GenerateRequest.Backup. BackupProfile is the token's wrap
	// profile, which tells whether the token can wrap keys of the type.
	Backup        bool
	BackupProfile hsm.WrapProfile
}

// GenerateKey generates a key in the token and records it. Its OpenPGP
// creation time is fixed now, so its fingerprint never changes.
func (a *Admin) GenerateKey(ctx context.Context, req NewKeyRequest) (store.Key, error) {
	e := TranscriptEntry{Operation: "key-generate", Key: req.Name, KeyType: req.Type.String(), Detail: ownerDetail(req)}
	if req.Backup {
		e.Detail = strings.TrimPrefix(e.Detail+"; for backup (extractable only wrapped under the trusted wrap key)", "; ")
	}
	ctx = a.audited(ctx, &e)
	k, err := a.generate(ctx, req)
	e.Fingerprint = k.Fingerprint
	return k, a.record(ctx, e, err)
}

func ownerDetail(req NewKeyRequest) string {
	if req.Owner == "" {
		return ""
	}
	return "granted to " + req.Owner + " (key admin)"
}

func (a *Admin) generate(ctx context.Context, req NewKeyRequest) (store.Key, error) {
	if err := a.checkNewKey(ctx, req); err != nil {
		return store.Key{}, err
	}
	if req.Backup {
		if err := a.Token.CheckBackupType(req.BackupProfile, req.Type); err != nil {
			return store.Key{}, err
		}
	}
	hk, err := a.Token.GenerateKey(hsm.GenerateRequest{Type: req.Type, Label: req.Name, Backup: req.Backup})
	if err != nil {
		return store.Key{}, err
	}
	return a.addKey(ctx, req, hk, a.now().Truncate(time.Second), "")
}

// ImportedKey is a private key read from a file, about to go into the token.
type ImportedKey struct {
	Signer crypto.Signer
	// PGPCreated is the OpenPGP creation time of a key imported from an
	// OpenPGP secret key: kept so its fingerprint does not change.
	PGPCreated time.Time
	// Fingerprint is the OpenPGP fingerprint it had, checked after import.
	Fingerprint string
	// UserIDs are the OpenPGP user ids it had.
	UserIDs []string
}

// ImportKey moves an existing private key into the token as a
// non-extractable object and records it. A key imported from OpenPGP keeps
// its creation time, user ids and so its fingerprint.
func (a *Admin) ImportKey(ctx context.Context, req NewKeyRequest, in ImportedKey) (store.Key, error) {
	typ, _ := hsm.KeyTypeOf(in.Signer.Public())
	e := TranscriptEntry{Operation: "key-import", Key: req.Name, KeyType: typ.String(), Detail: ownerDetail(req)}
	ctx = a.audited(ctx, &e)
	k, err := a.importKey(ctx, req, in)
	e.Fingerprint = k.Fingerprint
	return k, a.record(ctx, e, err)
}

func (a *Admin) importKey(ctx context.Context, req NewKeyRequest, in ImportedKey) (store.Key, error) {
	if err := a.checkNewKey(ctx, req); err != nil {
		return store.Key{}, err
	}
	if len(req.UserIDs) == 0 {
		req.UserIDs = in.UserIDs
	}
	created := in.PGPCreated
	if created.IsZero() {
		created = a.now().Truncate(time.Second)
	}
	hk, err := a.Token.ImportKey(hsm.ImportRequest{Key: in.Signer, Label: req.Name})
	if err != nil {
		return store.Key{}, err
	}
	return a.addKey(ctx, req, hk, created, in.Fingerprint)
}

func (a *Admin) checkNewKey(ctx context.Context, req NewKeyRequest) error {
	if err := a.needToken(); err != nil {
		return err
	}
	if req.Name == "" || strings.ContainsAny(req.Name, "\x00\n") || len(req.Name) > 64 {
		return fmt.Errorf("key name %q must be 1 to 64 bytes without NUL or newline", req.Name)
	}
	if _, err := a.Store.GetKey(ctx, req.Name); err == nil {
		return fmt.Errorf("a key named %q: %w", req.Name, store.ErrExists)
	}
	if req.Owner != "" {
		if _, err := a.Store.GetUser(ctx, req.Owner); err != nil {
			return fmt.Errorf("owner: %w (add the user first)", err)
		}
		if len(req.OwnerPassphrase) == 0 {
			return errors.New("the owner's passphrase for the new key is empty")
		}
	}
	return nil
}

// addKey records a key that is now in the token; if that fails the key is
// removed from the token again, so the two never disagree.
func (a *Admin) addKey(ctx context.Context, req NewKeyRequest, hk *hsm.Key, created time.Time, wantFP string) (store.Key, error) {
	k, err := a.describe(req, hk, created)
	if err == nil && wantFP != "" && !strings.EqualFold(k.Fingerprint, wantFP) {
		err = fmt.Errorf("the imported key's fingerprint %s differs from the original %s", k.Fingerprint, wantFP)
	}
	if err == nil {
		if e := entryOf(ctx); e != nil {
			e.Fingerprint = k.Fingerprint // for the record AddKey commits
		}
		k, err = a.Store.AddKey(ctx, k)
	}
	if err == nil && req.Owner != "" {
		err = a.grant(ctx, req.Name, req.Owner, req.OwnerPassphrase, true)
		if err != nil {
			a.Store.DeleteKey(ctx, req.Name)
		}
	}
	if err != nil {
		if derr := a.Token.DeleteKey(hk.ID(), ""); derr != nil {
			err = fmt.Errorf("%w; removing the key from the token again also failed: %v", err, derr)
		}
		return store.Key{}, err
	}
	return k, nil
}

func (a *Admin) describe(req NewKeyRequest, hk *hsm.Key, created time.Time) (store.Key, error) {
	der, err := x509.MarshalPKIXPublicKey(hk.Public())
	if err != nil {
		return store.Key{}, err
	}
	pk, err := openpgp.NewKey(hk, created)
	if err != nil {
		return store.Key{}, err
	}
	k := store.Key{
		Name: req.Name, KeyType: hk.Type().String(), Token: a.TokenName, ObjectID: hk.ID(),
		PublicKey: der, PGPCreated: created, Fingerprint: pk.FingerprintHex(), Backup: req.Backup,
	}
	if len(req.UserIDs) > 0 {
		if k.PGPCertificate, err = pk.CertificateExpiring(req.UserIDs, a.now(), req.Expires); err != nil {
			return store.Key{}, err
		}
	}
	return k, nil
}

// Signer returns the token key recorded under name, after checking that
// the token holds the same public key the database has.
func (a *Admin) Signer(ctx context.Context, name string) (*hsm.Key, store.Key, error) {
	if a.Token == nil {
		return nil, store.Key{}, errors.New("this operation needs the token")
	}
	k, err := a.Store.GetKey(ctx, name)
	if err != nil {
		return nil, k, err
	}
	hk, err := tokenKey(a.Token, k)
	return hk, k, err
}

// tokenKey finds a recorded key in the token and checks that the token
// holds the public key the database has.
func tokenKey(tok *hsm.Token, k store.Key) (*hsm.Key, error) {
	hk, err := tok.FindKey(k.ObjectID, "")
	if err != nil {
		return nil, fmt.Errorf("key %q is in the database but not in token %q: %w", k.Name, k.Token, err)
	}
	der, err := x509.MarshalPKIXPublicKey(hk.Public())
	if err != nil || !bytes.Equal(der, k.PublicKey) {
		return nil, fmt.Errorf("key %q: the token's public key differs from the database's; refusing to use it", k.Name)
	}
	return hk, nil
}

// DeleteKey removes a key from the token and the database, with every
// access to it. A key that is no longer in the token is refused unless
// forgetMissing is set; then only its database entry is removed.
func (a *Admin) DeleteKey(ctx context.Context, name string, forgetMissing bool) error {
	e := a.keyEntry(ctx, "key-delete", name, "")
	ctx = a.audited(ctx, &e)
	hk, _, err := a.Signer(ctx, name)
	switch {
	case err == nil:
		if err = a.Token.DeleteKey(hk.ID(), ""); err == nil {
			err = a.Store.DeleteKey(ctx, name)
		}
	case errors.Is(err, hsm.ErrKeyNotFound) && forgetMissing:
		e.Detail = "not in the token; database entry removed"
		err = a.Store.DeleteKey(ctx, name)
	case errors.Is(err, hsm.ErrKeyNotFound):
		err = fmt.Errorf("%w; to remove only its database entry, delete it with --forget-missing", err)
	}
	return a.record(ctx, e, err)
}
