package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// AuditRecord is one entry of the append-only audit log. Records form a
// hash chain: each record's PrevHash is the Hash of the record before it
// (32 zero bytes for the first), and Hash covers PrevHash and all other
// fields (see [Store.AppendAudit] for the exact encoding).
type AuditRecord struct {
	// ID is the position in the log, 1, 2, 3, ... without gaps; assigned
	// by AppendAudit.
	ID int64
	// At is when the operation happened, in UTC with nanoseconds;
	// AppendAudit uses the current time if zero.
	At time.Time
	// Server names the server that wrote the record (its configured
	// name, by default the host name); "" in records from before schema
	// version 3. Assigned by AppendAudit.
	Server string
	// Actor is who asked (user name, or a client certificate subject).
	Actor string
	// Operation is the request, e.g. "sign-rpm", "grant-key-access".
	Operation string
	// KeyName is the key concerned, or "".
	KeyName string
	// Detail is free text or JSON describing the request. Never put
	// secrets here.
	Detail string
	// Digest is the digest of the signed payload (e.g. "sha256:<hex>"),
	// or "".
	Digest string
	// Result is the outcome, e.g. "ok" or an error description.
	Result string
	// PrevHash is the previous record's Hash; assigned by AppendAudit.
	PrevHash []byte
	// Hash is this record's SHA-256 chain hash; assigned by AppendAudit.
	Hash []byte
}

// AuditChainError describes the first broken link VerifyAudit found. It
// matches [ErrAuditChain] under [errors.Is].
type AuditChainError struct {
	// ID is the id of the first record that fails verification.
	ID int64
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *AuditChainError) Error() string {
	return fmt.Sprintf("store: audit chain broken at record %d: %s", e.ID, e.Reason)
}

// Unwrap returns [ErrAuditChain].
func (e *AuditChainError) Unwrap() error { return ErrAuditChain }

// auditDomain and auditDomainV2 separate audit chain hashes from any other
// SHA-256 use, and version 2 hashes (which cover the server name) from
// version 1 hashes.
const (
	auditDomain   = "signet-audit-v1\x00"
	auditDomainV2 = "signet-audit-v2\x00"
)

// genesisHash returns the PrevHash of the first record: 32 zero bytes.
func genesisHash() []byte { return make([]byte, sha256.Size) }

// auditHash computes a record's chain hash over the fields exactly as
// stored (at is the stored text, not a re-formatted time). A record with a
// server name is hashed as version 2, which covers the name; one without
// (written before records named their server) as version 1. Blanking the
// name of a version 2 record therefore changes the hash it must have.
func auditHash(prev []byte, id int64, at, server, actor, operation, keyName, detail, digest, result string) []byte {
	h := sha256.New()
	if server == "" {
		h.Write([]byte(auditDomain))
	} else {
		h.Write([]byte(auditDomainV2))
	}
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field(prev)
	var idb [8]byte
	binary.BigEndian.PutUint64(idb[:], uint64(id))
	field(idb[:])
	fields := []string{at, actor, operation, keyName, detail, digest, result}
	if server != "" {
		fields = []string{at, server, actor, operation, keyName, detail, digest, result}
	}
	for _, s := range fields {
		field([]byte(s))
	}
	return h.Sum(nil)
}

// AppendAudit appends rec to the audit log and returns it as stored, with
// ID, At (if it was zero), PrevHash and Hash filled in; rec's own ID,
// PrevHash and Hash are ignored. Operation must not be empty.
//
// The record is inserted in a write transaction that also reads the
// current head of the chain (SQLite: BEGIN IMMEDIATE; PostgreSQL: READ
// COMMITTED after pg_advisory_xact_lock), so concurrent appenders
// (goroutines, handles, processes, servers sharing a PostgreSQL database)
// always produce one linear chain. Server is set to this handle's server
// name.
//
// Hash = SHA-256 of "signet-audit-v2\x00" followed by these fields, each
// encoded as an 8-byte big-endian length and the bytes: PrevHash, ID as an
// 8-byte big-endian integer, At as stored (RFC 3339 with nanoseconds, UTC,
// as produced by time.RFC3339Nano), Server, Actor, Operation, KeyName,
// Detail, Digest, Result (strings as their UTF-8 bytes). Records written
// before schema version 3 have no server and were hashed with
// "signet-audit-v1\x00" and the same fields without Server.
func (s *Store) AppendAudit(ctx context.Context, rec AuditRecord) (AuditRecord, error) {
	out, err := s.AppendAudits(ctx, []AuditRecord{rec})
	if err != nil {
		return AuditRecord{}, err
	}
	return out[0], nil
}

// AppendAudits appends recs in order, in one transaction: all of them are
// recorded or none. It is AppendAudit for a batch (one sign-rpms run signs
// hundreds of packages; one commit per package would bound the rate by the
// disk's fsync time).
func (s *Store) AppendAudits(ctx context.Context, recs []AuditRecord) ([]AuditRecord, error) {
	out := make([]AuditRecord, len(recs))
	ats := make([]string, len(recs))
	for i, rec := range recs {
		var err error
		if out[i], ats[i], err = s.prepareAudit(rec); err != nil {
			return nil, err
		}
	}
	err := s.writeTxOnly(ctx, func(tx *txn) error { return appendAudits(ctx, tx, out, ats) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// prepareAudit checks rec, names this server in it and fixes its time as
// it will be stored.
func (s *Store) prepareAudit(rec AuditRecord) (AuditRecord, string, error) {
	if rec.Operation == "" {
		return rec, "", invalid("audit record without operation")
	}
	rec.Server = s.server
	if rec.At.IsZero() {
		rec.At = time.Now()
	}
	at := formatTime(rec.At)
	var err error
	if rec.At, err = parseTime(at); err != nil {
		return rec, "", invalid("audit time %s cannot be stored as RFC 3339", at)
	}
	return rec, at, nil
}

// appendAudits appends out (times ats) to the chain inside tx, filling in
// their ids and hashes.
func appendAudits(ctx context.Context, tx *txn, out []AuditRecord, ats []string) error {
	var lastID int64
	var last []byte
	err := tx.QueryRowContext(ctx, `SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&lastID, &last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		lastID, last = 0, genesisHash()
	case err != nil:
		return dbErr("append audit", err)
	}
	for i := range out {
		rec := &out[i]
		rec.ID = lastID + 1
		rec.PrevHash = last
		rec.Hash = auditHash(rec.PrevHash, rec.ID, ats[i], rec.Server, rec.Actor, rec.Operation, rec.KeyName, rec.Detail, rec.Digest, rec.Result)
		if err := insertAudit(ctx, tx, rawAudit{id: rec.ID, at: ats[i], server: rec.Server, actor: rec.Actor,
			operation: rec.Operation, keyName: rec.KeyName, detail: rec.Detail, digest: rec.Digest, res: rec.Result,
			prevHash: rec.PrevHash, hash: rec.Hash}); err != nil {
			return dbErr("append audit", err)
		}
		lastID, last = rec.ID, rec.Hash
	}
	return nil
}

// pendingAudit is the record that a change made with its context commits
// along with the change (see WithAudit).
type pendingAudit struct {
	mu      sync.Mutex
	build   func() AuditRecord
	written bool
	rec     AuditRecord
}

type pendingAuditKey struct{}

// WithAudit returns a context under which the first write transaction that
// changes something (users, keys, accesses, certificates) also appends the
// audit record build returns, in the same transaction: the change and its
// record are committed together or not at all ("no record, no effect").
// build is called inside the transaction, after the change, so it may
// describe what was done. Later writes under the same context append
// nothing more; AuditWritten tells the caller whether the record went in.
func WithAudit(ctx context.Context, build func() AuditRecord) context.Context {
	return context.WithValue(ctx, pendingAuditKey{}, &pendingAudit{build: build})
}

// AuditWritten returns the record WithAudit put on ctx, as stored, and
// whether a committed change has written it.
func AuditWritten(ctx context.Context) (AuditRecord, bool) {
	p, _ := ctx.Value(pendingAuditKey{}).(*pendingAudit)
	if p == nil {
		return AuditRecord{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec, p.written
}

const auditColumns = `id, at, server, actor, operation, key_name, detail, digest, result, prev_hash, hash`

// rawAudit is an audit row as stored.
type rawAudit struct {
	id                                                         int64
	at, server, actor, operation, keyName, detail, digest, res string
	prevHash, hash                                             []byte
}

func scanRawAudit(row interface{ Scan(...any) error }) (rawAudit, error) {
	var r rawAudit
	err := row.Scan(&r.id, &r.at, &r.server, &r.actor, &r.operation, &r.keyName, &r.detail, &r.digest, &r.res, &r.prevHash, &r.hash)
	return r, err
}

// insertAudit inserts a row as it is (the triggers check it extends the
// chain).
func insertAudit(ctx context.Context, tx *txn, r rawAudit) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.id, r.at, r.server, r.actor, r.operation, r.keyName, r.detail, r.digest, r.res, r.prevHash, r.hash)
	return err
}

func (r rawAudit) record() (AuditRecord, error) {
	at, err := parseTime(r.at)
	if err != nil {
		return AuditRecord{}, fmt.Errorf("store: audit record %d: bad timestamp: %w", r.id, err)
	}
	return AuditRecord{
		ID: r.id, At: at, Server: r.server, Actor: r.actor, Operation: r.operation, KeyName: r.keyName,
		Detail: r.detail, Digest: r.digest, Result: r.res, PrevHash: r.prevHash, Hash: r.hash,
	}, nil
}

// ListAudit returns up to limit records with ID greater than afterID, in
// ID order; limit <= 0 means no limit. It does not verify the chain.
func (s *Store) ListAudit(ctx context.Context, afterID int64, limit int) ([]AuditRecord, error) {
	q, args := `SELECT `+auditColumns+` FROM audit WHERE id > ? ORDER BY id`, []any{afterID}
	if limit > 0 {
		q, args = q+` LIMIT ?`, append(args, limit)
	}
	rows, err := s.q().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr("list audit", err)
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		r, err := scanRawAudit(rows)
		if err != nil {
			return nil, dbErr("list audit", err)
		}
		rec, err := r.record()
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("list audit", err)
	}
	return out, nil
}

// LastAudit returns the newest audit record, or a zero AuditRecord (ID 0)
// if the log is empty. Recording its ID and Hash elsewhere lets a later
// check detect truncation of the log's tail, which the chain alone cannot.
func (s *Store) LastAudit(ctx context.Context) (AuditRecord, error) {
	r, err := scanRawAudit(s.q().QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY id DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return AuditRecord{}, nil
	}
	if err != nil {
		return AuditRecord{}, dbErr("last audit", err)
	}
	return r.record()
}

// VerifyAudit walks the whole audit chain from record 1 and returns how
// many records verified. At the first bad record it stops and returns the
// count of good records before it and a *[AuditChainError] naming the
// record and the reason: a gap in ids, a prev_hash that does not match the
// previous record's hash, or a hash that does not match the record's
// contents. It reads one consistent snapshot and does not block appenders.
//
// Removing records from the end of the log cannot be detected this way;
// compare with an externally kept [Store.LastAudit] for that.
func (s *Store) VerifyAudit(ctx context.Context) (n int, err error) {
	rows, err := s.q().QueryContext(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY id`)
	if err != nil {
		return 0, dbErr("verify audit", err)
	}
	defer rows.Close()
	wantID := int64(1)
	prev := genesisHash()
	for rows.Next() {
		r, err := scanRawAudit(rows)
		if err != nil {
			return n, dbErr("verify audit", err)
		}
		switch {
		case r.id != wantID:
			return n, &AuditChainError{ID: r.id, Reason: fmt.Sprintf("gap in ids: expected record %d, found %d", wantID, r.id)}
		case !bytes.Equal(r.prevHash, prev):
			return n, &AuditChainError{ID: r.id, Reason: fmt.Sprintf("prev_hash mismatch: does not match the hash of record %d", r.id-1)}
		}
		h := auditHash(r.prevHash, r.id, r.at, r.server, r.actor, r.operation, r.keyName, r.detail, r.digest, r.res)
		if !bytes.Equal(h, r.hash) {
			return n, &AuditChainError{ID: r.id, Reason: "hash mismatch: stored hash does not match the record's contents"}
		}
		prev = r.hash
		wantID++
		n++
	}
	if err := rows.Err(); err != nil {
		return n, dbErr("verify audit", err)
	}
	return n, nil
}
