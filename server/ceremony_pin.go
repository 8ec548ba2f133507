package server

// The token PIN change: every access row either wraps the new PIN or is
// removed, with the token's PIN, in one step.

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/signet-project/signet/hsm"
)

// AccessPassphrase is one user's passphrase for one key, given to
// ChangePIN so that the user's access can wrap the new PIN.
type AccessPassphrase struct {
	Key, User  string
	Passphrase []byte
}

// ChangePINRequest is a token PIN change.
type ChangePINRequest struct {
	NewPIN []byte
	// Passphrases are the users' passphrases for the accesses to keep.
	Passphrases []AccessPassphrase
	// Regrant allows the change while some accesses have no passphrase
	// here: those rows are removed and must be granted again.
	Regrant bool
	// DryRun only plans: nothing changes.
	DryRun bool
}

// ChangePINResult names the accesses, as "key/user".
type ChangePINResult struct {
	Rewrapped []string
	Regrant   []string
}

// ChangePIN changes the token's user PIN from a.PIN to req.NewPIN and
// rewraps every access row whose passphrase req gives. Accesses without
// one are listed; unless req.Regrant is set the change is then refused and
// nothing changes, otherwise their rows are removed. A passphrase that
// does not unwrap the current PIN refuses the whole change. The token is
// changed first, then every row and the audit record in one transaction;
// if that transaction fails the token's PIN is set back.
func (a *Admin) ChangePIN(ctx context.Context, req ChangePINRequest) (ChangePINResult, error) {
	e := TranscriptEntry{Operation: "token-change-pin"}
	ctx = a.audited(ctx, &e)
	res, err := a.changePIN(ctx, req, &e)
	if req.DryRun && err == nil {
		return res, nil
	}
	return res, a.record(ctx, e, err)
}

func (a *Admin) changePIN(ctx context.Context, req ChangePINRequest, e *TranscriptEntry) (ChangePINResult, error) {
	var res ChangePINResult
	if err := a.needToken(); err != nil {
		return res, err
	}
	if len(req.NewPIN) == 0 {
		return res, errors.New("the new PIN is empty")
	}
	if subtle.ConstantTimeCompare(req.NewPIN, a.PIN) == 1 {
		return res, errors.New("the new PIN is the current one")
	}
	given := map[[2]string][]byte{}
	for _, p := range req.Passphrases {
		given[[2]string{p.Key, p.User}] = p.Passphrase
	}
	accesses, err := a.Store.AllAccesses(ctx)
	if err != nil {
		return res, err
	}
	rewrap := map[int64][]byte{}
	var remove []int64
	var wrong []string
	for _, acc := range accesses {
		name := acc.KeyName + "/" + acc.UserName
		pass, ok := given[[2]string{acc.KeyName, acc.UserName}]
		if !ok {
			res.Regrant = append(res.Regrant, name)
			remove = append(remove, acc.ID)
			continue
		}
		delete(given, [2]string{acc.KeyName, acc.UserName})
		k, err := a.Store.GetKey(ctx, acc.KeyName)
		if err != nil {
			return res, err
		}
		b := AccessBinding(k, acc.UserID)
		pin, err := hsm.UnwrapPIN(acc.WrappedPIN, pass, b)
		ok = err == nil && subtle.ConstantTimeCompare(pin, a.PIN) == 1
		clear(pin)
		if !ok {
			wrong = append(wrong, name)
			continue
		}
		w, err := hsm.WrapPIN(req.NewPIN, pass, b, a.kdf())
		if err != nil {
			return res, err
		}
		rewrap[acc.ID] = w
		res.Rewrapped = append(res.Rewrapped, name)
	}
	var unknown []string
	for ku := range given {
		unknown = append(unknown, ku[0]+"/"+ku[1])
	}
	switch {
	case len(wrong) > 0:
		return res, fmt.Errorf("the passphrase given for %s does not unwrap the current PIN; nothing was changed", strings.Join(wrong, ", "))
	case len(unknown) > 0:
		return res, fmt.Errorf("passphrases were given for accesses that do not exist: %s; nothing was changed", strings.Join(unknown, ", "))
	case len(res.Regrant) > 0 && !req.Regrant:
		return res, fmt.Errorf("no passphrase was given for %s: give them, or allow these accesses to be removed and granted again; nothing was changed", strings.Join(res.Regrant, ", "))
	case req.DryRun:
		return res, nil
	}
	e.Detail = fmt.Sprintf("%d accesses rewrapped, %d removed to be granted again", len(res.Rewrapped), len(res.Regrant))
	if len(res.Regrant) > 0 {
		e.Detail += ": " + strings.Join(res.Regrant, ", ")
	}
	old := append([]byte(nil), a.PIN...)
	defer clear(old)
	if err := a.Token.SetPIN(old, req.NewPIN); err != nil {
		return res, err
	}
	if err := a.Store.ReplaceWrappedPINs(ctx, rewrap, remove); err != nil {
		if rerr := a.Token.SetPIN(req.NewPIN, old); rerr != nil {
			return res, fmt.Errorf("%w; setting the token's PIN back also failed (%v): the token now has the NEW PIN and the database still wraps the old one", err, rerr)
		}
		return res, fmt.Errorf("%w; the token's PIN was set back", err)
	}
	clear(a.PIN)
	a.PIN = append(a.PIN[:0], req.NewPIN...)
	return res, nil
}
