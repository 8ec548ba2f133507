// This file holds the key administration operations: list-keys, new-key,
// import-key, delete-key, modify-key, get-public-key,
// change-key-expiration.

package server

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

// sigulKeyType is the type list-keys shows: keys with an OpenPGP
// certificate serve the OpenPGP operations ("gnupg"); the others are
// X.509 keys ("RSA" or "ECC").
func sigulKeyType(k store.Key) string {
	switch {
	case len(k.PGPCertificate) > 0:
		return "gnupg"
	case strings.HasPrefix(k.KeyType, "rsa"):
		return "RSA"
	}
	return "ECC"
}

func (h *Handlers) listKeys(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	keys, err := h.Store.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = fmt.Sprintf("%s (%s)", k.Name, sigulKeyType(k))
	}
	return list("num-keys", names), nil
}

func (h *Handlers) deleteKey(ctx context.Context, r *Request) (*Response, error) {
	key, err := h.adminAnd(ctx, r, "key")
	if err != nil {
		return nil, err
	}
	k, err := h.Store.GetKey(ctx, key)
	if err != nil {
		return nil, storeStatus(err)
	}
	// Destroy the token object first: a database row without its key is
	// visible and removable (key delete --forget-missing), a key without a
	// row is not.
	// The object must hold the public key the database has: an object id
	// is only a label, and destroying another key by it is not undone.
	hk, err := tokenKey(h.Token, k)
	switch {
	case errors.Is(err, hsm.ErrKeyNotFound):
		// Gone already: only the row is left to remove.
	case err != nil:
		return nil, err
	default:
		h.keysMu.Lock()
		delete(h.keys, k.ID)
		h.keysMu.Unlock()
		if err := h.Token.DeleteKey(hk.ID(), ""); err != nil && !errors.Is(err, hsm.ErrKeyNotFound) {
			return nil, err
		}
	}
	return &Response{}, storeStatus(h.Store.DeleteKey(ctx, key))
}

func (h *Handlers) modifyKey(ctx context.Context, r *Request) (*Response, error) {
	key, err := h.adminAnd(ctx, r, "key")
	if err != nil {
		return nil, err
	}
	var upd store.KeyUpdate
	if v, ok := r.Fields["new-name"]; ok {
		n := string(v)
		upd.Name = &n
	}
	_, err = h.Store.UpdateKey(ctx, key, upd)
	return &Response{}, storeStatus(err)
}

func (h *Handlers) getPublicKey(ctx context.Context, r *Request) (*Response, error) {
	ka, err := h.adminOrKeyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	clear(ka.PIN)
	return h.publicKey(ka.Key)
}

// errNoPIN answers new-key and import-key on a server started without the
// token PIN.
var errNoPIN = &refusal{status: protocol.CodeUnknownError,
	message: "this server holds no token PIN: run `signet-server key generate` or `key import` on the server host, or start the server with a PIN file"}

// newKeyTypes maps Sigul's keytype to the key generated: "gnupg" keys get
// an OpenPGP identity; "RSA" and "ECC" keys are for X.509 and Authenticode.
var newKeyTypes = map[string]hsm.KeyType{"gnupg": hsm.RSA4096, "RSA": hsm.RSA4096, "ECC": hsm.ECDSAP256}

func (h *Handlers) ceremony(r *Request) *Admin {
	return &Admin{Store: h.Store, Token: h.Token, TokenName: h.TokenName, PIN: h.PIN, KDF: h.KDF, Actor: r.User, Now: h.Now}
}

// checkNewKey runs the checks new-key and import-key share, in Sigul's
// order (§8.3): the name is free, the keytype known, the initial key
// administrator exists; then that the server holds a PIN.
func (h *Handlers) checkNewKey(ctx context.Context, r *Request, key string) (kt string, typ hsm.KeyType, owner string, err error) {
	kt, owner = "gnupg", r.User
	if v, ok := r.Fields["keytype"]; ok {
		kt = string(v)
	}
	if v, ok := r.Fields["initial-key-admin"]; ok {
		owner = string(v)
	}
	if _, err := h.Store.GetKey(ctx, key); err == nil {
		return "", 0, "", refuse(protocol.CodeAlreadyExists)
	}
	typ, ok := newKeyTypes[kt]
	if !ok {
		return "", 0, "", refuse(protocol.CodeUnsupportedKeytype)
	}
	if _, err := h.Store.GetUser(ctx, owner); err != nil {
		return "", 0, "", storeStatus(err)
	}
	if len(h.PIN) == 0 {
		return "", 0, "", errNoPIN
	}
	return kt, typ, owner, nil
}

func (h *Handlers) newKey(ctx context.Context, r *Request) (*Response, error) {
	key, err := h.adminAnd(ctx, r, "key")
	if err != nil {
		return nil, err
	}
	pass := r.Secrets["passphrase"]
	if len(pass) == 0 {
		return nil, fmt.Errorf("%w: passphrase is missing", ErrDrop)
	}
	kt, typ, owner, err := h.checkNewKey(ctx, r, key)
	if err != nil {
		return nil, err
	}
	var expires time.Time
	if v, ok := r.Fields["expire-date"]; ok {
		if kt != "gnupg" {
			return nil, &refusal{status: protocol.CodeUnknownError, message: "expire-date is for gnupg keys only"}
		}
		if expires, err = time.Parse(time.DateOnly, string(v)); err != nil {
			return nil, fmt.Errorf("%w: expire-date %q is not YYYY-MM-DD", ErrDrop, v)
		}
	}
	req := NewKeyRequest{Name: key, Type: typ, Owner: owner, OwnerPassphrase: pass}
	if kt == "gnupg" {
		// Sigul's --gnupg-expire-date (gpg's Expire-Date); other key
		// types have no expiry, as in Sigul.
		if v, ok := r.Fields["expire-date"]; ok {
			d, err := time.Parse(time.DateOnly, string(v))
			if err != nil {
				return nil, fmt.Errorf("%w: expire-date %q is not YYYY-MM-DD", ErrDrop, v)
			}
			req.Expires = d
		}
		uid := string(r.Fields["name-real"])
		if c := r.Fields["name-comment"]; len(c) > 0 {
			uid += " (" + string(c) + ")"
		}
		if e := r.Fields["name-email"]; len(e) > 0 {
			uid += " <" + string(e) + ">"
		}
		if strings.TrimSpace(uid) == "" {
			return nil, &refusal{status: protocol.CodeUnknownError, message: "a gnupg key needs name-real"}
		}
		req.UserIDs = []string{uid}
	}
	k, err := h.ceremony(r).GenerateKey(ctx, req)
	if err != nil {
		return nil, storeStatus(err)
	}
	if !expires.IsZero() {
		// Sigul's expire-date: the new certificate carries it.
		if err := h.ceremony(r).setExpiration(ctx, key, expires); err != nil {
			return nil, err
		}
		if k, err = h.Store.GetKey(ctx, key); err != nil {
			return nil, storeStatus(err)
		}
	}
	return h.publicKey(k)
}

// publicKey is the reply payload of new-key and get-public-key.
func (h *Handlers) publicKey(k store.Key) (*Response, error) {
	if len(k.PGPCertificate) > 0 {
		armored, err := openpgp.Armor(k.PGPCertificate, "PGP PUBLIC KEY BLOCK")
		if err != nil {
			return nil, err
		}
		return withPayload(armored), nil
	}
	return withPayload(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.PublicKey})), nil
}

func (h *Handlers) importKey(ctx context.Context, r *Request) (*Response, error) {
	key, err := h.adminAnd(ctx, r, "key")
	if err != nil {
		return nil, err
	}
	pass, newPass := r.Secrets["passphrase"], r.Secrets["new-passphrase"]
	if _, ok := r.Secrets["passphrase"]; !ok || len(newPass) == 0 {
		return nil, fmt.Errorf("%w: passphrase or new-passphrase is missing", ErrDrop)
	}
	kt, _, owner, err := h.checkNewKey(ctx, r, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r.Payload, 1<<20+1))
	if err != nil {
		return nil, err
	}
	defer clear(data)
	if kt != "gnupg" {
		return nil, &refusal{status: protocol.CodeInvalidImport, message: "importing encrypted PKCS#8 keys over the network is not supported: use `signet-server key import` on the server host"}
	}
	in, err := ParseImport(data, func() ([]byte, error) { return bytes.Clone(pass), nil })
	switch {
	case errors.Is(err, openpgp.ErrBadPassphrase):
		return nil, refuse(protocol.CodeImportPassphraseError)
	case err != nil:
		return nil, &refusal{status: protocol.CodeInvalidImport, message: err.Error()}
	}
	_, err = h.ceremony(r).ImportKey(ctx, NewKeyRequest{Name: key, Owner: owner, OwnerPassphrase: newPass}, in)
	return &Response{}, storeStatus(err)
}

func (h *Handlers) changeKeyExpiration(ctx context.Context, r *Request) (*Response, error) {
	var expires time.Time
	if v, ok := r.Fields["expire-date"]; ok {
		d, err := time.Parse(time.DateOnly, string(v))
		if err != nil {
			return nil, fmt.Errorf("%w: expire-date %q is not YYYY-MM-DD", ErrDrop, v)
		}
		expires = d
	}
	ka, err := h.keyAuth(ctx, r, true)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	if len(ka.Key.PGPCertificate) == 0 {
		return nil, refuse(protocol.CodeUnsupportedKeytype)
	}
	if _, ok := r.Fields["subkey"]; ok {
		return nil, &refusal{status: protocol.CodeUnknownError, message: "signet keys have no subkeys"}
	}
	if err := h.login(ka); err != nil {
		return nil, err
	}
	return &Response{}, h.ceremony(r).setExpiration(ctx, ka.Key.Name, expires)
}
