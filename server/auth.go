package server

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server/store"
)

// ErrAuthFailed is Sigul's AUTHENTICATION_FAILED. It deliberately carries
// nothing else: an unknown user, an unknown key, a missing access, a wrong
// password or passphrase and a certificate that does not match the user all
// look the same, in the message and in the time taken.
var ErrAuthFailed = errors.New("authentication failed")

// Authenticator implements Sigul's authentication classes (PROTOCOL-v1
// §8.1) over the store: ADMIN checks an administrator's password, KEY-USER
// and KEY-ADMIN unwrap the token PIN from the caller's access row with the
// caller's passphrase.
type Authenticator struct {
	Store *store.Store
	// Unwrap unwraps PINs, caching successes (see hsm.Unwrapper).
	Unwrap *hsm.Unwrapper
	// LenientUsernames skips the certificate CN = user check for everyone;
	// ProxyUsernames lists CNs that may act as any user (Sigul's
	// lenient-username-check and proxy-usernames).
	LenientUsernames bool
	ProxyUsernames   []string
	// PasswordCost is the Argon2id cost of the administrator password
	// hashes new-user and modify-user store, and of the decoy hash checked
	// for a user without one; zero means store.DefaultArgon2Params(). Only
	// tests lower it. Set it before the first request.
	PasswordCost store.Argon2Params

	// Decoys cost what a real check costs, for callers that have no row.
	decoys *decoys
	// decoyPassword is a hash of random bytes, made on first use.
	decoyOnce     sync.Once
	decoyPassword string
	decoyErr      error
}

// passwordCost returns PasswordCost, or the default.
func (a *Authenticator) passwordCost() store.Argon2Params {
	if a.PasswordCost == (store.Argon2Params{}) {
		return store.DefaultArgon2Params()
	}
	return a.PasswordCost
}

// hashPassword hashes a new administrator password at passwordCost.
func (a *Authenticator) hashPassword(pw []byte) (string, error) {
	return store.HashPasswordWithParams(pw, a.passwordCost())
}

// decoy returns the decoy password hash.
func (a *Authenticator) decoy() (string, error) {
	a.decoyOnce.Do(func() {
		junk := make([]byte, 32)
		if _, err := rand.Read(junk); err != nil {
			a.decoyErr = err
			return
		}
		a.decoyPassword, a.decoyErr = a.hashPassword(junk)
	})
	return a.decoyPassword, a.decoyErr
}

// NewAuthenticator returns an Authenticator whose unwrap cache keeps
// successes for cacheTTL (at most 4096 of them). Its decoys cost what the
// stored wrapped PINs cost (see decoys); kdf, the cost new grants are made
// with, is the decoys' cost while no access row exists.
func NewAuthenticator(st *store.Store, kdf hsm.KDFParams, cacheTTL time.Duration) (*Authenticator, error) {
	d, err := newDecoys(st, kdf)
	if err != nil {
		return nil, err
	}
	return &Authenticator{Store: st, Unwrap: hsm.NewUnwrapper(cacheTTL, 4096), decoys: d}, nil
}

// CheckIdentity is the first step of every authenticated operation: the
// subject CN of the client's inner TLS certificate must equal the request's
// user, unless the check is lenient or the CN is a proxy.
func (a *Authenticator) CheckIdentity(cn, user string) error {
	if a.LenientUsernames || cn == user {
		return nil
	}
	for _, p := range a.ProxyUsernames {
		if cn == p {
			return nil
		}
	}
	return ErrAuthFailed
}

// Admin is the ADMIN class: user exists, is an administrator, has a
// password, and password matches it. A missing password fails too.
func (a *Authenticator) Admin(ctx context.Context, user string, password []byte) error {
	u, err := a.Store.GetUser(ctx, user)
	hash := u.PasswordHash
	if err != nil || hash == "" {
		// The decoy's error, if any, only makes the check fail sooner:
		// this user fails whatever it says.
		hash, _ = a.decoy()
	}
	ok, verr := store.VerifyPassword(hash, password)
	if err != nil || verr != nil || !ok || !u.Admin || u.PasswordHash == "" || len(password) == 0 {
		return ErrAuthFailed
	}
	return nil
}

// KeyAccess is what a successful KEY-USER check yields: the key, the
// caller's access row, and the token PIN. The caller zeroes PIN.
type KeyAccess struct {
	Key    store.Key
	Access store.KeyAccess
	PIN    []byte
}

// KeyUser is the KEY-USER class, and KEY-ADMIN when keyAdmin is set: the
// user has an access row for the key and passphrase unwraps it. Every
// failure runs the same KDF on a decoy so that timing tells nothing apart.
func (a *Authenticator) KeyUser(ctx context.Context, user, key string, passphrase []byte, keyAdmin bool) (KeyAccess, error) {
	acc, err := a.Store.GetAccess(ctx, key, user)
	var wrapped []byte
	binding := decoyBinding
	var k store.Key
	if err == nil {
		if k, err = a.Store.GetKey(ctx, key); err == nil {
			wrapped, binding = acc.WrappedPIN, AccessBinding(k, acc.UserID)
		}
	}
	if wrapped == nil {
		if wrapped, err = a.decoys.pick(ctx, user, key); err != nil {
			return KeyAccess{}, ErrAuthFailed
		}
		err = ErrAuthFailed
	}
	if len(passphrase) == 0 {
		passphrase = []byte{0} // still pay the KDF: an empty passphrase never unwraps
	}
	pin, uerr := a.Unwrap.Unwrap(wrapped, passphrase, binding)
	if err != nil || uerr != nil || (keyAdmin && !acc.KeyAdmin) {
		clear(pin)
		return KeyAccess{}, ErrAuthFailed
	}
	return KeyAccess{Key: k, Access: acc, PIN: pin}, nil
}

// AdminOrKey is the "ADMIN or KEY-ADMIN" and "ADMIN or KEY-USER" classes:
// with a password, an administrator (and the key must exist); otherwise
// the key class. The returned KeyAccess has no PIN for an administrator.
func (a *Authenticator) AdminOrKey(ctx context.Context, user, key string, password, passphrase []byte, keyAdmin bool) (KeyAccess, error) {
	if password != nil {
		if err := a.Admin(ctx, user, password); err != nil {
			return KeyAccess{}, err
		}
		k, err := a.Store.GetKey(ctx, key)
		if err != nil {
			return KeyAccess{}, ErrAuthFailed
		}
		return KeyAccess{Key: k}, nil
	}
	if passphrase == nil {
		// Neither secret: still cost what a check costs.
		a.KeyUser(ctx, "\x00nobody", key, nil, false)
		return KeyAccess{}, ErrAuthFailed
	}
	return a.KeyUser(ctx, user, key, passphrase, keyAdmin)
}
