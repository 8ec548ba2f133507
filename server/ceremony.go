// This file holds Admin, the key and user manager behind the offline
// ceremony commands (`signet-server key ...`, `user ...`) and behind
// new-key, import-key and change-key-expiration, and its audit and
// transcript records.

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

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
	// KDF is the Argon2id cost of new wrapped PINs (hsm.DefaultKDF() if zero).
	KDF hsm.KDFParams
	// PasswordCost is the Argon2id cost of new administrator password
	// hashes (store.DefaultArgon2Params() if zero); only tests lower it.
	PasswordCost store.Argon2Params
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
		return hsm.DefaultKDF()
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
//
// A step run under audited's context has its success record committed with
// its change already; record then adds a record only for a failure (a
// change committed before a later part of the step failed is thereby
// recorded as both).
func (a *Admin) record(ctx context.Context, e TranscriptEntry, opErr error) error {
	e.Time, e.Actor, e.Result = a.now(), a.Actor, "ok"
	if opErr != nil {
		e.Result = "error: " + opErr.Error()
	}
	var aerr error
	if rec, written := store.AuditWritten(ctx); written && opErr == nil {
		e.Time = rec.At
	} else {
		_, aerr = a.Store.AppendAudit(ctx, a.auditOf(e))
	}
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

// RecordFirst records step e as done before its effect is released, for a
// step whose effect lies outside the database and so cannot commit with
// its record: a backup or share file made visible, a wrap key put in the
// token. No record, no effect: if the record (audit row or transcript
// line) cannot be written the caller must not release the effect, and
// the error says so. A part that fails afterwards is recorded again as a
// failure (RecordStep), as when a committed change is followed by a
// failure; a failure that cannot be recorded leaves a record of more than
// was done, never less.
func (a *Admin) RecordFirst(ctx context.Context, e TranscriptEntry) error {
	e.Time, e.Actor, e.Result = a.now(), a.Actor, "ok"
	if _, err := a.Store.AppendAudit(ctx, a.auditOf(e)); err != nil {
		return fmt.Errorf("%s was not done: its audit record could not be written: %w", e.Operation, err)
	}
	if a.Transcript != nil {
		line, _ := json.Marshal(e)
		if _, err := a.Transcript.Write(append(line, '\n')); err != nil {
			err = fmt.Errorf("%s was not done: writing the transcript: %w", e.Operation, err)
			a.Store.AppendAudit(ctx, a.auditOf(failed(e, err)))
			return err
		}
	}
	return nil
}

// failed is e as the record of a failure with err.
func failed(e TranscriptEntry, err error) TranscriptEntry {
	e.Result = "error: " + err.Error()
	return e
}

// auditOf is the audit record of a transcript entry.
func (a *Admin) auditOf(e TranscriptEntry) store.AuditRecord {
	detail, _ := json.Marshal(struct {
		KeyType     string `json:"key_type,omitempty"`
		Fingerprint string `json:"fingerprint,omitempty"`
		Detail      string `json:"detail,omitempty"`
	}{e.KeyType, e.Fingerprint, e.Detail})
	return store.AuditRecord{
		At: e.Time, Actor: e.Actor, Operation: e.Operation, KeyName: e.Key,
		Detail: string(detail), Result: e.Result,
	}
}

type entryKey struct{}

// audited returns the context for a step whose entry is e: the first
// change the step commits carries e's success record in its transaction
// (store.WithAudit), so that a change is never committed without its
// record. Steps that learn more of e as they go (a new key's fingerprint)
// find it with entryOf.
func (a *Admin) audited(ctx context.Context, e *TranscriptEntry) context.Context {
	ctx = context.WithValue(ctx, entryKey{}, e)
	return store.WithAudit(ctx, func() store.AuditRecord {
		r := *e
		r.Time, r.Actor, r.Result = a.now(), a.Actor, "ok"
		return a.auditOf(r)
	})
}

// entryOf is the entry audited put on ctx, or nil.
func entryOf(ctx context.Context) *TranscriptEntry {
	e, _ := ctx.Value(entryKey{}).(*TranscriptEntry)
	return e
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
