// This file holds the ceremony's users and grants: a grant wraps the token
// PIN under the grantee's passphrase (AccessBinding says to what it is
// bound).

package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server/store"
)

// Grant lets user sign with key using passphrase: the token PIN is wrapped
// under it, bound to the key and user names.
func (a *Admin) Grant(ctx context.Context, key, user string, passphrase []byte, keyAdmin bool) error {
	detail := "user " + user
	if keyAdmin {
		detail += " (key admin)"
	}
	e := a.keyEntry(ctx, "key-grant", key, detail)
	ctx = a.audited(ctx, &e)
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
	ctx = a.audited(ctx, &e)
	return a.record(ctx, e, a.Store.Revoke(ctx, key, user))
}

// AddUser adds a user; an admin needs a password (for Sigul's
// administration operations), which is stored as an Argon2id hash.
func (a *Admin) AddUser(ctx context.Context, name string, admin bool, password []byte) error {
	e := TranscriptEntry{Operation: "user-add", Detail: "user " + name}
	if admin {
		e.Detail += " (admin)"
	}
	ctx = a.audited(ctx, &e)
	err := func() error {
		if name == "" || strings.ContainsAny(name, "\x00\n") || len(name) > 64 {
			return fmt.Errorf("user name %q must be 1 to 64 bytes without NUL or newline", name)
		}
		u := store.User{Name: name, Admin: admin}
		if admin && len(password) == 0 {
			return errors.New("an admin user needs a password")
		}
		if len(password) > 0 {
			cost := a.PasswordCost
			if cost == (store.Argon2Params{}) {
				cost = store.DefaultArgon2Params()
			}
			h, err := store.HashPasswordWithParams(password, cost)
			if err != nil {
				return err
			}
			u.PasswordHash = h
		}
		_, err := a.Store.AddUser(ctx, u)
		return err
	}()
	return a.record(ctx, e, err)
}

// DeleteUser deletes a user. A user who still has key accesses is kept
// unless force is set, in which case the accesses go too.
func (a *Admin) DeleteUser(ctx context.Context, name string, force bool) error {
	e := TranscriptEntry{Operation: "user-delete", Detail: "user " + name}
	ctx = a.audited(ctx, &e)
	return a.record(ctx, e, a.Store.DeleteUser(ctx, name, force))
}
