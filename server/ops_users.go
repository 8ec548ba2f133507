// This file holds the user administration operations: list-users,
// new-user, delete-user, user-info, modify-user.

package server

import (
	"context"

	"github.com/signet-project/signet/server/store"
)

func (h *Handlers) listUsers(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	users, err := h.Store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Name
	}
	return list("num-users", names), nil
}

func (h *Handlers) newUser(ctx context.Context, r *Request) (*Response, error) {
	name, err := h.adminAnd(ctx, r, "name")
	if err != nil {
		return nil, err
	}
	admin, err := optBool(r, "admin", false)
	if err != nil {
		return nil, err
	}
	u := store.User{Name: name, Admin: admin}
	if pw := r.Secrets["new-password"]; len(pw) > 0 {
		if u.PasswordHash, err = h.Auth.hashPassword(pw); err != nil {
			return nil, err
		}
	}
	_, err = h.Store.AddUser(ctx, u)
	return &Response{}, storeStatus(err)
}

func (h *Handlers) deleteUser(ctx context.Context, r *Request) (*Response, error) {
	name, err := h.adminAnd(ctx, r, "name")
	if err != nil {
		return nil, err
	}
	return &Response{}, storeStatus(h.Store.DeleteUser(ctx, name, false))
}

func (h *Handlers) userInfo(ctx context.Context, r *Request) (*Response, error) {
	name, err := h.adminAnd(ctx, r, "name")
	if err != nil {
		return nil, err
	}
	u, err := h.Store.GetUser(ctx, name)
	if err != nil {
		return nil, storeStatus(err)
	}
	return &Response{Fields: []Field{{"admin", boolValue(u.Admin)}}}, nil
}

func (h *Handlers) modifyUser(ctx context.Context, r *Request) (*Response, error) {
	name, err := h.adminAnd(ctx, r, "name")
	if err != nil {
		return nil, err
	}
	var upd store.UserUpdate
	if _, ok := r.Fields["admin"]; ok {
		admin, err := optBool(r, "admin", false)
		if err != nil {
			return nil, err
		}
		upd.Admin = &admin
	}
	if v, ok := r.Fields["new-name"]; ok {
		n := string(v)
		upd.Name = &n
	}
	if pw := r.Secrets["new-password"]; len(pw) > 0 {
		hash, err := h.Auth.hashPassword(pw)
		if err != nil {
			return nil, err
		}
		upd.PasswordHash = &hash
	}
	_, err = h.Store.UpdateUser(ctx, name, upd)
	return &Response{}, storeStatus(err)
}
