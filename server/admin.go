// Package server is signet's server role: the only process that joins the
// token (hsm), the database (store) and the formats. This file holds the
// key and user management shared by the offline ceremony commands
// (`signet-server key ...`, `signet-server user ...`) and, later, by the
// network handlers for Sigul's administration operations.
package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/signet-project/signet/formats/openpgp"
	sx509 "github.com/signet-project/signet/formats/x509"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server/store"
)

// Admin performs key and user management against one token and one
// database. Every operation that changes something is recorded in the
// audit table and, when Transcript is set, as one JSON line there.
type Admin struct {
	Store *store.Store
	// Token is the logged-in token; operations on users alone work without.
	Token *hsm.Token
	// TokenName is stored with each key: the token's label or serial.
	TokenName string
	// PIN is the token's user PIN, wrapped under each grantee's passphrase.
	PIN []byte
	// KDF is the Argon2id cost of new wrapped PINs (hsm.DefaultKDF if zero).
	KDF hsm.KDFParams
	// Actor names who performs the operations, for the audit trail.
	Actor string
	// Transcript receives one JSON line per ceremony step, if set.
	Transcript io.Writer
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

func (a *Admin) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func (a *Admin) kdf() hsm.KDFParams {
	if a.KDF == (hsm.KDFParams{}) {
		return hsm.DefaultKDF
	}
	return a.KDF
}

func (a *Admin) needToken() error {
	if a.Token == nil || len(a.PIN) == 0 {
		return errors.New("this operation needs the token and its PIN")
	}
	return nil
}

// TranscriptEntry is one line of a ceremony transcript.
type TranscriptEntry struct {
	Time        time.Time `json:"time"`
	Actor       string    `json:"actor"`
	Operation   string    `json:"operation"`
	Key         string    `json:"key,omitempty"`
	KeyType     string    `json:"key_type,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	Result      string    `json:"result"`
}

// record writes the audit row and the transcript line for one step. A step
// whose record cannot be written is reported as failed.
func (a *Admin) record(ctx context.Context, e TranscriptEntry, opErr error) error {
	e.Time, e.Actor, e.Result = a.now(), a.Actor, "ok"
	if opErr != nil {
		e.Result = "error: " + opErr.Error()
	}
	detail, _ := json.Marshal(struct {
		KeyType     string `json:"key_type,omitempty"`
		Fingerprint string `json:"fingerprint,omitempty"`
		Detail      string `json:"detail,omitempty"`
	}{e.KeyType, e.Fingerprint, e.Detail})
	_, aerr := a.Store.AppendAudit(ctx, store.AuditRecord{
		At: e.Time, Actor: e.Actor, Operation: e.Operation, KeyName: e.Key,
		Detail: string(detail), Result: e.Result,
	})
	if a.Transcript != nil {
		line, _ := json.Marshal(e)
		if _, err := a.Transcript.Write(append(line, '\n')); err != nil && aerr == nil {
			aerr = fmt.Errorf("writing the transcript: %w", err)
		}
	}
	if opErr != nil {
		return opErr
	}
	if aerr != nil {
		return fmt.Errorf("%s was done but could not be recorded: %w", e.Operation, aerr)
	}
	return nil
}

// keyEntry starts a transcript entry for an operation on an existing key,
// with its type and fingerprint when the key is known.
func (a *Admin) keyEntry(ctx context.Context, op, key, detail string) TranscriptEntry {
	e := TranscriptEntry{Operation: op, Key: key, Detail: detail}
	if k, err := a.Store.GetKey(ctx, key); err == nil {
		e.KeyType, e.Fingerprint = k.KeyType, k.Fingerprint
	}
	return e
}

// NewKeyRequest describes a key to generate or import.
type NewKeyRequest struct {
	Name string
	// Type is the key type to generate; ignored by ImportKey.
	Type hsm.KeyType
	// UserIDs, if any, make an OpenPGP certificate now and store it.
	UserIDs []string
	// Owner, if set, is granted access to the new key as key admin, with
	// OwnerPassphrase as their passphrase for it.
	Owner           string
	OwnerPassphrase []byte
}

// GenerateKey generates a key in the token and records it. Its OpenPGP
// creation time is fixed now, so its fingerprint never changes.
func (a *Admin) GenerateKey(ctx context.Context, req NewKeyRequest) (store.Key, error) {
	e := TranscriptEntry{Operation: "key-generate", Key: req.Name, KeyType: req.Type.String(), Detail: ownerDetail(req)}
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
	hk, err := a.Token.GenerateKey(hsm.GenerateRequest{Type: req.Type, Label: req.Name})
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
		PublicKey: der, PGPCreated: created, Fingerprint: pk.FingerprintHex(),
	}
	if len(req.UserIDs) > 0 {
		if k.PGPCertificate, err = pk.Certificate(req.UserIDs, a.now()); err != nil {
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

// Grant lets user sign with key using passphrase: the token PIN is wrapped
// under it, bound to the key and user names.
func (a *Admin) Grant(ctx context.Context, key, user string, passphrase []byte, keyAdmin bool) error {
	detail := "user " + user
	if keyAdmin {
		detail += " (key admin)"
	}
	e := a.keyEntry(ctx, "key-grant", key, detail)
	return a.record(ctx, e, a.grant(ctx, key, user, passphrase, keyAdmin))
}

func (a *Admin) grant(ctx context.Context, key, user string, passphrase []byte, keyAdmin bool) error {
	if err := a.needToken(); err != nil {
		return err
	}
	_, k, err := a.Signer(ctx, key)
	if err != nil {
		return err
	}
	u, err := a.Store.GetUser(ctx, user)
	if err != nil {
		return err
	}
	w, err := hsm.WrapPIN(a.PIN, passphrase, AccessBinding(k, u.ID), a.kdf())
	if err != nil {
		return err
	}
	_, err = a.Store.Grant(ctx, key, user, w, keyAdmin)
	return err
}

// AccessBinding is what a wrapped PIN is bound to: the key's public key
// and the user's row, not their names, so that renaming a key or a user
// (Sigul's modify-key, modify-user) leaves every grant working, while a
// wrapped PIN moved to another key's or user's row still does not unwrap.
func AccessBinding(k store.Key, userID int64) hsm.Binding {
	sum := sha256.Sum256(k.PublicKey)
	return hsm.Binding{Key: "spki-sha256:" + hex.EncodeToString(sum[:]), User: fmt.Sprintf("user-id:%d", userID)}
}

// Revoke removes user's access to key.
func (a *Admin) Revoke(ctx context.Context, key, user string) error {
	e := a.keyEntry(ctx, "key-revoke", key, "user "+user)
	return a.record(ctx, e, a.Store.Revoke(ctx, key, user))
}

// AddUser adds a user; an admin needs a password (for Sigul's
// administration operations), which is stored as an Argon2id hash.
func (a *Admin) AddUser(ctx context.Context, name string, admin bool, password []byte) error {
	err := func() error {
		if name == "" || strings.ContainsAny(name, "\x00\n") || len(name) > 64 {
			return fmt.Errorf("user name %q must be 1 to 64 bytes without NUL or newline", name)
		}
		u := store.User{Name: name, Admin: admin}
		if admin && len(password) == 0 {
			return errors.New("an admin user needs a password")
		}
		if len(password) > 0 {
			h, err := store.HashPassword(password)
			if err != nil {
				return err
			}
			u.PasswordHash = h
		}
		_, err := a.Store.AddUser(ctx, u)
		return err
	}()
	detail := "user " + name
	if admin {
		detail += " (admin)"
	}
	return a.record(ctx, TranscriptEntry{Operation: "user-add", Detail: detail}, err)
}

// DeleteUser deletes a user. A user who still has key accesses is kept
// unless force is set, in which case the accesses go too.
func (a *Admin) DeleteUser(ctx context.Context, name string, force bool) error {
	err := a.Store.DeleteUser(ctx, name, force)
	return a.record(ctx, TranscriptEntry{Operation: "user-delete", Detail: "user " + name}, err)
}

// OpenPGPCertificate returns the key's armored OpenPGP certificate. With
// user ids it makes (and stores) a new one, self-signed by the token key
// with the key's fixed creation time; without, it returns the stored one.
func (a *Admin) OpenPGPCertificate(ctx context.Context, name string, userIDs []string) ([]byte, error) {
	k, err := a.Store.GetKey(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(userIDs) == 0 {
		if len(k.PGPCertificate) == 0 {
			return nil, fmt.Errorf("key %q has no OpenPGP certificate yet: give a user id, e.g. --uid 'Name <email>'", name)
		}
		return openpgp.Armor(k.PGPCertificate, "PGP PUBLIC KEY BLOCK")
	}
	e := a.keyEntry(ctx, "key-export-openpgp", name, strings.Join(userIDs, "; "))
	cert, err := a.recertify(ctx, k, userIDs, nil)
	if err = a.record(ctx, e, err); err != nil {
		return nil, err
	}
	return openpgp.Armor(cert, "PGP PUBLIC KEY BLOCK")
}

// recertify makes and stores a new OpenPGP certificate for k, self-signed
// by the token key with the key's fixed creation time. Nil userIDs keep the
// stored certificate's user ids; a nil expires keeps its expiration time
// (a pointer to the zero time removes it).
func (a *Admin) recertify(ctx context.Context, k store.Key, userIDs []string, expires *time.Time) ([]byte, error) {
	var old openpgp.CertificateInfo
	if len(k.PGPCertificate) > 0 {
		info, err := openpgp.ParseCertificate(k.PGPCertificate)
		if err != nil {
			return nil, fmt.Errorf("stored certificate of key %q: %w", k.Name, err)
		}
		old = *info
	}
	if userIDs == nil {
		userIDs = old.UserIDs
	}
	if expires == nil {
		expires = &old.Expires
	}
	hk, err := tokenKey(a.Token, k)
	if err != nil {
		return nil, err
	}
	pk, err := openpgp.NewKey(hk, k.PGPCreated)
	if err != nil {
		return nil, err
	}
	cert, err := pk.CertificateExpiring(userIDs, a.now(), *expires)
	if err != nil {
		return nil, err
	}
	_, err = a.Store.UpdateKey(ctx, k.Name, store.KeyUpdate{PGPCertificate: &cert})
	return cert, err
}

// SetExpiration re-certifies an OpenPGP key with a new expiration time
// (zero: never expires), keeping its user ids (Sigul's
// change-key-expiration). The token must be logged in.
func (a *Admin) SetExpiration(ctx context.Context, name string, expires time.Time) error {
	detail := "never expires"
	if !expires.IsZero() {
		detail = "expires " + expires.UTC().Format(time.DateOnly)
	}
	e := a.keyEntry(ctx, "key-expiration", name, detail)
	err := func() error {
		k, err := a.Store.GetKey(ctx, name)
		if err != nil {
			return err
		}
		if len(k.PGPCertificate) == 0 {
			return fmt.Errorf("key %q has no OpenPGP certificate to set an expiration time in", name)
		}
		_, err = a.recertify(ctx, k, nil, &expires)
		return err
	}()
	return a.record(ctx, e, err)
}

// SelfSignedCA makes a self-signed CA certificate for a key and stores it
// under certName.
func (a *Admin) SelfSignedCA(ctx context.Context, keyName, certName string, req sx509.Request) (*x509.Certificate, error) {
	req.Kind = sx509.CA
	e := a.keyEntry(ctx, "key-export-x509-ca", keyName, certDetail(certName, req))
	cert, err := func() (*x509.Certificate, error) {
		hk, _, err := a.Signer(ctx, keyName)
		if err != nil {
			return nil, err
		}
		return a.storeCert(ctx, keyName, certName, func() (*x509.Certificate, error) { return sx509.SelfSignedCA(hk, req) })
	}()
	return cert, a.record(ctx, e, err)
}

// IssueCertificate makes a certificate for subjectKey, signed by issuerKey
// with its stored certificate issuerCert, and stores it under certName.
func (a *Admin) IssueCertificate(ctx context.Context, issuerKey, issuerCert, subjectKey, certName string, req sx509.Request) (*x509.Certificate, error) {
	e := a.keyEntry(ctx, "key-export-x509", subjectKey, certDetail(certName, req)+" issued by "+issuerKey+"/"+issuerCert)
	cert, err := func() (*x509.Certificate, error) {
		issuer, _, err := a.Signer(ctx, issuerKey)
		if err != nil {
			return nil, err
		}
		ic, err := a.Store.GetCertificate(ctx, issuerKey, issuerCert)
		if err != nil {
			return nil, err
		}
		icert, err := x509.ParseCertificate(ic.DER)
		if err != nil {
			return nil, fmt.Errorf("stored certificate %s/%s: %w", issuerKey, issuerCert, err)
		}
		subject, _, err := a.Signer(ctx, subjectKey)
		if err != nil {
			return nil, err
		}
		return a.storeCert(ctx, subjectKey, certName, func() (*x509.Certificate, error) {
			return sx509.Issue(icert, issuer, subject.Public(), req)
		})
	}()
	return cert, a.record(ctx, e, err)
}

func (a *Admin) storeCert(ctx context.Context, keyName, certName string, make func() (*x509.Certificate, error)) (*x509.Certificate, error) {
	if certName == "" {
		return nil, errors.New("a certificate needs a name to be stored under (--cert-name)")
	}
	if _, err := a.Store.GetCertificate(ctx, keyName, certName); err == nil {
		return nil, fmt.Errorf("key %q already has a certificate named %q: %w", keyName, certName, store.ErrExists)
	}
	cert, err := make()
	if err != nil {
		return nil, err
	}
	if _, err := a.Store.PutCertificate(ctx, keyName, certName, cert.Raw, false); err != nil {
		return nil, err
	}
	return cert, nil
}

// Certificate returns a stored certificate.
func (a *Admin) Certificate(ctx context.Context, keyName, certName string) (*x509.Certificate, error) {
	c, err := a.Store.GetCertificate(ctx, keyName, certName)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(c.DER)
}

// CertificateRequest makes a PKCS#10 request signed by the key, for a CA
// outside signet to sign.
func (a *Admin) CertificateRequest(ctx context.Context, keyName string, subject pkix.Name, dnsNames []string) ([]byte, error) {
	e := a.keyEntry(ctx, "key-export-csr", keyName, subject.String())
	der, err := func() ([]byte, error) {
		hk, _, err := a.Signer(ctx, keyName)
		if err != nil {
			return nil, err
		}
		return sx509.CertificateRequest(hk, subject, dnsNames)
	}()
	return der, a.record(ctx, e, err)
}

func certDetail(certName string, req sx509.Request) string {
	return fmt.Sprintf("certificate %q kind %v subject %q", certName, req.Kind, req.Subject.String())
}

// SignFormat is the kind of signature SignFile makes.
type SignFormat int

// Signature formats for SignFile.
const (
	// SignOpenPGP is an OpenPGP detached signature (binary document type).
	SignOpenPGP SignFormat = iota + 1
	// SignRaw is the bare signature: PKCS#1 v1.5 over SHA-256 for RSA,
	// ASN.1 ECDSA over SHA-256 (SHA-384 for P-384), or Ed25519 over the
	// data itself, as `openssl dgst -verify` / `pkeyutl -verify` check it.
	SignRaw
)

// SignFile signs data with a key directly in the ceremony (for instance
// to test a new key, or to sign a key-transition statement), and records
// the SHA-256 of what was signed.
func (a *Admin) SignFile(ctx context.Context, keyName string, data []byte, format SignFormat) ([]byte, error) {
	sum := sha256.Sum256(data)
	e := a.keyEntry(ctx, "key-sign", keyName, "sha256:"+hex.EncodeToString(sum[:]))
	sig, err := func() ([]byte, error) {
		hk, k, err := a.Signer(ctx, keyName)
		if err != nil {
			return nil, err
		}
		switch format {
		case SignOpenPGP:
			pk, err := openpgp.NewKey(hk, k.PGPCreated)
			if err != nil {
				return nil, err
			}
			return pk.SignDetached(bytes.NewReader(data), false, a.now())
		case SignRaw:
			if hk.Type() == hsm.Ed25519 {
				return hk.Sign(nil, data, crypto.Hash(0))
			}
			h := crypto.SHA256
			if hk.Type() == hsm.ECDSAP384 {
				h = crypto.SHA384
			}
			d := h.New()
			d.Write(data)
			return hk.Sign(nil, d.Sum(nil), h)
		}
		return nil, fmt.Errorf("unknown signature format %d", format)
	}()
	if err := a.record(ctx, e, err); err != nil {
		return nil, err
	}
	return sig, nil
}
