// This file holds the key-access operations: key-user-info,
// modify-key-user, list-key-users, grant-key-access, revoke-key-access,
// change-passphrase.

package server

import (
	"context"
	"fmt"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

// userAndKey looks up the outer name and key fields in Sigul's order:
// the user first, then the key.
func (h *Handlers) userAndKey(ctx context.Context, r *Request) (string, string, error) {
	name, err := str(r, "name")
	if err != nil {
		return "", "", err
	}
	key, err := str(r, "key")
	if err != nil {
		return "", "", err
	}
	if _, err := h.Store.GetUser(ctx, name); err != nil {
		return "", "", storeStatus(err)
	}
	if _, err := h.Store.GetKey(ctx, key); err != nil {
		return "", "", storeStatus(err)
	}
	return name, key, nil
}

func (h *Handlers) keyUserInfo(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	name, key, err := h.userAndKey(ctx, r)
	if err != nil {
		return nil, err
	}
	acc, err := h.Store.GetAccess(ctx, key, name)
	if err != nil {
		return nil, storeStatus(err)
	}
	return &Response{Fields: []Field{{"key-admin", boolValue(acc.KeyAdmin)}}}, nil
}

func (h *Handlers) modifyKeyUser(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	name, key, err := h.userAndKey(ctx, r)
	if err != nil {
		return nil, err
	}
	var upd store.AccessUpdate
	if _, ok := r.Fields["key-admin"]; ok {
		ka, err := optBool(r, "key-admin", false)
		if err != nil {
			return nil, err
		}
		upd.KeyAdmin = &ka
	}
	_, err = h.Store.UpdateAccess(ctx, key, name, upd)
	return &Response{}, storeStatus(err)
}

func (h *Handlers) listKeyUsers(ctx context.Context, r *Request) (*Response, error) {
	ka, err := h.adminOrKeyAuth(ctx, r, true)
	if err != nil {
		return nil, err
	}
	clear(ka.PIN)
	acc, err := h.Store.ListAccesses(ctx, ka.Key.Name)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(acc))
	for i, a := range acc {
		names[i] = a.UserName
	}
	return list("num-users", names), nil
}

// wrapFor wraps pin under passphrase for user's access to k.
func (h *Handlers) wrapFor(ctx context.Context, k store.Key, user string, pin, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: new-passphrase is missing", ErrDrop)
	}
	u, err := h.Store.GetUser(ctx, user)
	if err != nil {
		return nil, storeStatus(err)
	}
	kdf := h.KDF
	if kdf == (hsm.KDFParams{}) {
		kdf = hsm.DefaultKDF()
	}
	return hsm.WrapPIN(pin, passphrase, AccessBinding(k, u.ID), kdf)
}

// grantKeyAccess needs no PIN held by the server: the granting key
// administrator's passphrase unwraps it, and it is wrapped again under the
// grantee's new passphrase.
func (h *Handlers) grantKeyAccess(ctx context.Context, r *Request) (*Response, error) {
	name, err := str(r, "name")
	if err != nil {
		return nil, err
	}
	ka, err := h.keyAuth(ctx, r, true)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	if _, err := h.Store.GetAccess(ctx, ka.Key.Name, name); err == nil {
		return nil, refuse(protocol.CodeAlreadyExists)
	}
	if err := checkBindings(r); err != nil {
		return nil, err
	}
	w, err := h.wrapFor(ctx, ka.Key, name, ka.PIN, r.Secrets["new-passphrase"])
	if err != nil {
		return nil, err
	}
	_, err = h.Store.Grant(ctx, ka.Key.Name, name, w, false)
	return &Response{}, storeStatus(err)
}

func (h *Handlers) revokeKeyAccess(ctx context.Context, r *Request) (*Response, error) {
	name, err := str(r, "name")
	if err != nil {
		return nil, err
	}
	ka, err := h.adminOrKeyAuth(ctx, r, true)
	if err != nil {
		return nil, err
	}
	clear(ka.PIN)
	if _, err := h.Store.GetUser(ctx, name); err != nil {
		return nil, storeStatus(err)
	}
	return &Response{}, storeStatus(h.Store.Revoke(ctx, ka.Key.Name, name))
}

func (h *Handlers) changePassphrase(ctx context.Context, r *Request) (*Response, error) {
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	if err := checkBindings(r); err != nil {
		return nil, err
	}
	w, err := h.wrapFor(ctx, ka.Key, r.User, ka.PIN, r.Secrets["new-passphrase"])
	if err != nil {
		return nil, err
	}
	_, err = h.Store.UpdateAccess(ctx, ka.Key.Name, r.User, store.AccessUpdate{WrappedPIN: w})
	return &Response{}, storeStatus(err)
}
