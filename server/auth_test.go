package server_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
)

func TestAuthenticator(t *testing.T) {
	// Not parallel: it counts hsm.KDFRuns, which every test running a
	// KDF at the same time would add to.
	ctx := context.Background()
	a, _ := newAdmin(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.AddUser(ctx, "root", true, []byte("admin pw")))
	must(a.AddUser(ctx, "alice", false, nil))
	must(a.AddUser(ctx, "bob", false, nil))
	must(a.AddUser(ctx, "pwnoadmin", false, []byte("pw")))
	_, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "k", Type: hsm.Ed25519, Owner: "alice", OwnerPassphrase: []byte("alice pass")})
	must(err)
	must(a.Grant(ctx, "k", "bob", []byte("bob pass"), false))
	_, err = a.GenerateKey(ctx, server.NewKeyRequest{Name: "other", Type: hsm.Ed25519})
	must(err)

	au, err := server.NewAuthenticator(a.Store, cheapKDF, time.Minute)
	must(err)
	au.PasswordCost = cheapPassword

	t.Run("admin", func(t *testing.T) {
		if err := au.Admin(ctx, "root", []byte("admin pw")); err != nil {
			t.Fatalf("right password: %v", err)
		}
		for name, c := range map[string]struct {
			user string
			pw   []byte
		}{
			"wrong password": {"root", []byte("admin pX")},
			"no password":    {"root", nil},
			"unknown user":   {"nobody", []byte("admin pw")},
			"not an admin":   {"pwnoadmin", []byte("pw")},
			"no hash":        {"alice", []byte("")},
		} {
			if err := au.Admin(ctx, c.user, c.pw); !errors.Is(err, server.ErrAuthFailed) {
				t.Errorf("%s: err = %v, want ErrAuthFailed", name, err)
			}
		}
	})

	t.Run("key user", func(t *testing.T) {
		ka, err := au.KeyUser(ctx, "bob", "k", []byte("bob pass"), false)
		if err != nil || !bytes.Equal(ka.PIN, a.PIN) || ka.Key.Name != "k" {
			t.Fatalf("bob on k: %+v, %v", ka.Key, err)
		}
		if _, err := au.KeyUser(ctx, "alice", "k", []byte("alice pass"), true); err != nil {
			t.Fatalf("alice as key admin: %v", err)
		}
		// Every refusal costs exactly one KDF run, like a real check.
		for name, c := range map[string]struct {
			user, key string
			pass      []byte
			admin     bool
		}{
			"wrong passphrase":      {"bob", "k", []byte("bob pasX"), false},
			"no passphrase":         {"bob", "k", nil, false},
			"another user's":        {"bob", "k", []byte("alice pass"), false},
			"no access":             {"bob", "other", []byte("bob pass"), false},
			"unknown key":           {"bob", "nokey", []byte("bob pass"), false},
			"unknown user":          {"nobody", "k", []byte("bob pass"), false},
			"key admin needed":      {"bob", "k", []byte("bob pass"), true},
			"wrong pass, key admin": {"alice", "k", []byte("x"), true},
		} {
			before := hsm.KDFRuns()
			_, err := au.KeyUser(ctx, c.user, c.key, c.pass, c.admin)
			if !errors.Is(err, server.ErrAuthFailed) {
				t.Errorf("%s: err = %v, want ErrAuthFailed", name, err)
			}
			// "key admin needed" may be served from the cache of bob's
			// earlier success: it costs no more than a success does.
			if runs := hsm.KDFRuns() - before; runs != 1 && name != "key admin needed" {
				t.Errorf("%s: %d KDF runs, want 1", name, runs)
			}
		}
	})

	t.Run("admin or key", func(t *testing.T) {
		if _, err := au.AdminOrKey(ctx, "root", "k", []byte("admin pw"), nil, true); err != nil {
			t.Fatalf("admin: %v", err)
		}
		if _, err := au.AdminOrKey(ctx, "root", "nokey", []byte("admin pw"), nil, true); !errors.Is(err, server.ErrAuthFailed) {
			t.Fatalf("admin on an unknown key: err = %v", err)
		}
		if _, err := au.AdminOrKey(ctx, "alice", "k", nil, []byte("alice pass"), true); err != nil {
			t.Fatalf("key admin: %v", err)
		}
		if _, err := au.AdminOrKey(ctx, "bob", "k", nil, []byte("bob pass"), true); !errors.Is(err, server.ErrAuthFailed) {
			t.Fatalf("plain key user where key admin is needed: err = %v", err)
		}
		if _, err := au.AdminOrKey(ctx, "bob", "k", nil, nil, false); !errors.Is(err, server.ErrAuthFailed) {
			t.Fatalf("no secret at all: err = %v", err)
		}
	})

	t.Run("renames keep grants", func(t *testing.T) {
		k2, bob2 := "k-renamed", "bob-renamed"
		if _, err := a.Store.UpdateKey(ctx, "k", store.KeyUpdate{Name: &k2}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Store.UpdateUser(ctx, "bob", store.UserUpdate{Name: &bob2}); err != nil {
			t.Fatal(err)
		}
		if _, err := au.KeyUser(ctx, bob2, k2, []byte("bob pass"), false); err != nil {
			t.Fatalf("after renaming the key and the user: %v", err)
		}
	})

	t.Run("identity", func(t *testing.T) {
		if au.CheckIdentity("alice", "alice") != nil || au.CheckIdentity("alice", "Alice") == nil {
			t.Fatal("CN must equal the user, case-sensitively")
		}
		au.ProxyUsernames = []string{"robo"}
		if au.CheckIdentity("robo", "alice") != nil {
			t.Fatal("a proxy CN may act as any user")
		}
	})
}
