package server_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// TestChangePIN: the token's PIN changes and every access row either wraps
// the new PIN or is removed, in one step; without the passphrases of every
// access (or leave to remove them), or with a wrong one, nothing changes.
func TestChangePIN(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tk := softhsmtest.New(t)
	tok, err := hsm.Open(tk.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { tok.Close() }()
	if err := tok.Login(tk.PIN); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "signet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var transcript bytes.Buffer
	a := &server.Admin{Store: st, Token: tok, TokenName: tk.Label, PIN: bytes.Clone(tk.PIN), KDF: cheapKDF,
		PasswordCost: cheapPassword, Actor: "tester@host", Transcript: &transcript}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.AddUser(ctx, "alice", false, nil))
	must(a.AddUser(ctx, "bob", false, nil))
	k, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "k", Type: hsm.ECDSAP256, Owner: "alice", OwnerPassphrase: []byte("alice pass")})
	must(err)
	must(a.Grant(ctx, "k", "bob", []byte("bob pass"), false))
	oldPIN, newPIN := bytes.Clone(tk.PIN), []byte("0f1e2d3c4b5a")
	alice := server.AccessPassphrase{Key: "k", User: "alice", Passphrase: []byte("alice pass")}
	unwraps := func(user, pass string) []byte {
		t.Helper()
		acc, err := st.GetAccess(ctx, "k", user)
		if err != nil {
			return nil
		}
		pin, err := hsm.UnwrapPIN(acc.WrappedPIN, []byte(pass), server.AccessBinding(k, acc.UserID))
		if err != nil {
			t.Fatalf("%s's row: %v", user, err)
		}
		return pin
	}

	// Refusals: nothing changes.
	_, err = a.ChangePIN(ctx, server.ChangePINRequest{NewPIN: newPIN, Passphrases: []server.AccessPassphrase{alice}})
	if err == nil || !strings.Contains(err.Error(), "k/bob") {
		t.Fatalf("change without bob's passphrase: %v; want a refusal naming k/bob", err)
	}
	_, err = a.ChangePIN(ctx, server.ChangePINRequest{NewPIN: newPIN, Regrant: true,
		Passphrases: []server.AccessPassphrase{{Key: "k", User: "alice", Passphrase: []byte("wrong")}}})
	if err == nil || !strings.Contains(err.Error(), "k/alice") {
		t.Fatalf("change with a wrong passphrase: %v; want a refusal naming k/alice", err)
	}
	if pin := unwraps("bob", "bob pass"); !bytes.Equal(pin, oldPIN) {
		t.Fatal("a refused change touched bob's row")
	}
	plan, err := a.ChangePIN(ctx, server.ChangePINRequest{NewPIN: newPIN, Regrant: true, DryRun: true, Passphrases: []server.AccessPassphrase{alice}})
	if err != nil || strings.Join(plan.Rewrapped, ",") != "k/alice" || strings.Join(plan.Regrant, ",") != "k/bob" {
		t.Fatalf("dry run: %+v, %v", plan, err)
	}

	res, err := a.ChangePIN(ctx, server.ChangePINRequest{NewPIN: newPIN, Regrant: true, Passphrases: []server.AccessPassphrase{alice}})
	if err != nil || strings.Join(res.Rewrapped, ",") != "k/alice" || strings.Join(res.Regrant, ",") != "k/bob" {
		t.Fatalf("change: %+v, %v", res, err)
	}
	if pin := unwraps("alice", "alice pass"); !bytes.Equal(pin, newPIN) {
		t.Error("alice's row does not wrap the new PIN")
	}
	if _, err := st.GetAccess(ctx, "k", "bob"); err == nil {
		t.Error("bob's row, which had no passphrase, is still there")
	}
	last, err := st.LastAudit(ctx)
	if err != nil || last.Operation != "token-change-pin" || last.Result != "ok" || !strings.Contains(last.Detail, "k/bob") {
		t.Errorf("last audit record: %+v, %v", last, err)
	}
	if _, err := st.VerifyAudit(ctx); err != nil {
		t.Errorf("audit chain: %v", err)
	}
	for _, s := range [][]byte{oldPIN, newPIN, []byte("alice pass")} {
		if bytes.Contains(transcript.Bytes(), s) {
			t.Errorf("the transcript contains a secret %q", s)
		}
	}

	// The token itself: once every session is closed, only the new PIN
	// logs in.
	tok.Close()
	tok2, err := hsm.Open(tk.Config())
	must(err)
	defer tok2.Close()
	if err := tok2.Login(oldPIN); !errors.Is(err, hsm.ErrBadPIN) {
		t.Fatalf("the old PIN after the change: %v, want ErrBadPIN", err)
	}
	if err := tok2.Login(newPIN); err != nil {
		t.Fatalf("the new PIN after the change: %v", err)
	}
	hk, err := tok2.FindKey(nil, "k")
	must(err)
	if _, err := hk.Sign(nil, make([]byte, 32), crypto.SHA256); err != nil {
		t.Errorf("signing with the new PIN: %v", err)
	}
}
