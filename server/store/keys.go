package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Key is a signing key held in a hardware token.
type Key struct {
	// ID is the database row id, assigned by AddKey.
	ID int64
	// Name is the unique key name clients use.
	Name string
	// KeyType is the algorithm, e.g. "rsa4096", "ecdsa-p256", "ed25519".
	KeyType string
	// Token identifies the PKCS#11 token holding the key (label or
	// serial).
	Token string
	// ObjectID is the key objects' CKA_ID on the token.
	ObjectID []byte
	// PublicKey is the public key, PKIX (SubjectPublicKeyInfo) DER.
	PublicKey []byte
	// PGPCreated is the OpenPGP key creation time (whole seconds, UTC);
	// the zero Time means none (NULL).
	PGPCreated time.Time
	// PGPCertificate is the OpenPGP certificate (transferable public
	// key), or nil.
	PGPCertificate []byte
	// Fingerprint is the OpenPGP fingerprint in upper-case hex, or "".
	Fingerprint string
	// CreatedAt is when the key was added (UTC); AddKey sets it if zero.
	CreatedAt time.Time
	// Backup: the key was generated to be backed up (extractable, wrapped
	// under a trusted wrap key only) or restored from such a backup.
	Backup bool
}

// KeyUpdate lists the changes UpdateKey makes; nil fields are left alone.
type KeyUpdate struct {
	// Name, if set, renames the key.
	Name *string
	// PGPCreated, if set, replaces the OpenPGP creation time; a pointer to
	// the zero Time clears it.
	PGPCreated *time.Time
	// PGPCertificate, if set, replaces the OpenPGP certificate; a pointer
	// to a nil or empty slice clears it.
	PGPCertificate *[]byte
	// Fingerprint, if set, replaces the OpenPGP fingerprint; a pointer to
	// "" clears it.
	Fingerprint *string
}

// normFingerprint validates an OpenPGP fingerprint (40 hex digits for v4,
// 64 for v6) and returns it in upper case.
func normFingerprint(fp string) (string, error) {
	if fp == "" {
		return "", nil
	}
	bad := len(fp) != 40 && len(fp) != 64
	if !bad {
		_, err := hex.DecodeString(fp)
		bad = err != nil
	}
	if bad {
		return "", invalid("fingerprint %q is not 40 or 64 hex digits", fp)
	}
	return strings.ToUpper(fp), nil
}

func pgpCreated(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.Unix(), Valid: true}
}

const keyColumns = `id, name, key_type, token, object_id, public_key, pgp_created, pgp_certificate, fingerprint, created_at, backup`

func scanKey(row interface{ Scan(...any) error }) (Key, error) {
	var k Key
	var created sql.NullInt64
	var fp sql.NullString
	var createdAt string
	if err := row.Scan(&k.ID, &k.Name, &k.KeyType, &k.Token, &k.ObjectID, &k.PublicKey,
		&created, &k.PGPCertificate, &fp, &createdAt, &k.Backup); err != nil {
		return Key{}, err
	}
	if created.Valid {
		k.PGPCreated = time.Unix(created.Int64, 0).UTC()
	}
	k.Fingerprint = fp.String
	t, err := parseTime(createdAt)
	if err != nil {
		return Key{}, err
	}
	k.CreatedAt = t
	return k, nil
}

func getKey(ctx context.Context, q queryer, name string) (Key, error) {
	k, err := scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, notFound(KindKey, name, "")
	}
	if err != nil {
		return Key{}, dbErr("get key", err)
	}
	return k, nil
}

// keyID returns the row id of the named key.
func keyID(ctx context.Context, q queryer, name string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM keys WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound(KindKey, name, "")
	}
	if err != nil {
		return 0, dbErr("get key", err)
	}
	return id, nil
}

// AddKey records a key and returns it with ID (and CreatedAt, if it was
// zero) set. Name, KeyType, Token, ObjectID and PublicKey are required. A
// key of the same name yields an error matching [ErrExists].
func (s *Store) AddKey(ctx context.Context, k Key) (Key, error) {
	if err := checkName("key", k.Name); err != nil {
		return Key{}, err
	}
	switch {
	case k.KeyType == "":
		return Key{}, invalid("key %q: empty key type", k.Name)
	case k.Token == "":
		return Key{}, invalid("key %q: empty token", k.Name)
	case len(k.ObjectID) == 0:
		return Key{}, invalid("key %q: empty object id", k.Name)
	case len(k.PublicKey) == 0:
		return Key{}, invalid("key %q: empty public key", k.Name)
	}
	fp, err := normFingerprint(k.Fingerprint)
	if err != nil {
		return Key{}, err
	}
	k.Fingerprint = fp
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	k.CreatedAt = k.CreatedAt.UTC()
	if !k.PGPCreated.IsZero() {
		k.PGPCreated = time.Unix(k.PGPCreated.Unix(), 0).UTC()
	}
	if len(k.PGPCertificate) == 0 {
		k.PGPCertificate = nil
	}
	err = s.writeTx(ctx, func(tx *txn) error {
		id, err := tx.insertID(ctx, `INSERT INTO keys
			(name, key_type, token, object_id, public_key, pgp_created, pgp_certificate, fingerprint, created_at, backup)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.Name, k.KeyType, k.Token, k.ObjectID, k.PublicKey, pgpCreated(k.PGPCreated),
			nullBytes(k.PGPCertificate), nullString(k.Fingerprint), formatTime(k.CreatedAt), boolInt(k.Backup))
		if isUnique(err) {
			return exists(KindKey, k.Name, "")
		}
		if err != nil {
			return dbErr("add key", err)
		}
		k.ID = id
		return nil
	})
	if err != nil {
		return Key{}, err
	}
	return k, nil
}

// GetKey returns the named key.
func (s *Store) GetKey(ctx context.Context, name string) (Key, error) {
	return getKey(ctx, s.q(), name)
}

// ListKeys returns all keys ordered by name.
func (s *Store) ListKeys(ctx context.Context) ([]Key, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT `+keyColumns+` FROM keys ORDER BY name`)
	if err != nil {
		return nil, dbErr("list keys", err)
	}
	defer rows.Close()
	var keys []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, dbErr("list keys", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("list keys", err)
	}
	return keys, nil
}

// UpdateKey applies upd to the named key (Sigul's modify-key, plus the
// OpenPGP fields) and returns the result. Renaming onto an existing name
// yields an error matching [ErrExists].
func (s *Store) UpdateKey(ctx context.Context, name string, upd KeyUpdate) (Key, error) {
	if upd.Name != nil {
		if err := checkName("key", *upd.Name); err != nil {
			return Key{}, err
		}
	}
	var fp string
	if upd.Fingerprint != nil {
		var err error
		if fp, err = normFingerprint(*upd.Fingerprint); err != nil {
			return Key{}, err
		}
	}
	var k Key
	err := s.writeTx(ctx, func(tx *txn) error {
		var err error
		if k, err = getKey(ctx, tx, name); err != nil {
			return err
		}
		if upd.Name != nil {
			k.Name = *upd.Name
		}
		if upd.PGPCreated != nil {
			k.PGPCreated = time.Time{}
			if !upd.PGPCreated.IsZero() {
				k.PGPCreated = time.Unix(upd.PGPCreated.Unix(), 0).UTC()
			}
		}
		if upd.PGPCertificate != nil {
			k.PGPCertificate = nil
			if len(*upd.PGPCertificate) > 0 {
				k.PGPCertificate = append([]byte(nil), *upd.PGPCertificate...)
			}
		}
		if upd.Fingerprint != nil {
			k.Fingerprint = fp
		}
		_, err = tx.ExecContext(ctx, `UPDATE keys SET name = ?, pgp_created = ?, pgp_certificate = ?, fingerprint = ?
			WHERE id = ?`,
			k.Name, pgpCreated(k.PGPCreated), nullBytes(k.PGPCertificate), nullString(k.Fingerprint), k.ID)
		if isUnique(err) {
			return exists(KindKey, k.Name, "")
		}
		if err != nil {
			return dbErr("update key", err)
		}
		return nil
	})
	if err != nil {
		return Key{}, err
	}
	return k, nil
}

// DeleteKey deletes the named key together with its key accesses and
// certificates. It does not touch the token; destroying the key objects is
// the caller's business.
func (s *Store) DeleteKey(ctx context.Context, name string) error {
	return s.writeTx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM keys WHERE name = ?`, name)
		if err != nil {
			return dbErr("delete key", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return dbErr("delete key", err)
		}
		if n == 0 {
			return notFound(KindKey, name, "")
		}
		return nil
	})
}
