package store

import (
	"context"
	"database/sql"
	"errors"
)

// Certificate is a named X.509 certificate for a key (for example a
// Secure Boot signing certificate). The DER is stored as given; the store
// does not parse it.
type Certificate struct {
	// ID is the database row id.
	ID int64
	// KeyName is the key the certificate belongs to.
	KeyName string
	// Name is unique per key.
	Name string
	// DER is the certificate, DER encoded.
	DER []byte
}

// PutCertificate stores a certificate under name for the named key. If a
// certificate of that name exists it is replaced when replace is set and
// otherwise refused with an error matching [ErrExists].
func (s *Store) PutCertificate(ctx context.Context, keyName, name string, der []byte, replace bool) (Certificate, error) {
	if err := checkName("certificate", name); err != nil {
		return Certificate{}, err
	}
	if len(der) == 0 {
		return Certificate{}, invalid("empty DER for certificate %q of key %q", name, keyName)
	}
	c := Certificate{KeyName: keyName, Name: name, DER: append([]byte(nil), der...)}
	err := s.writeTx(ctx, func(tx *txn) error {
		kid, err := keyID(ctx, tx, keyName)
		if err != nil {
			return err
		}
		var existing int64
		err = tx.QueryRowContext(ctx, `SELECT id FROM certificates WHERE key_id = ? AND name = ?`, kid, name).Scan(&existing)
		switch {
		case err == nil && !replace:
			return exists(KindCertificate, name, keyName)
		case err == nil:
			c.ID = existing
			if _, err := tx.ExecContext(ctx, `UPDATE certificates SET der = ? WHERE id = ?`, der, existing); err != nil {
				return dbErr("put certificate", err)
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return dbErr("put certificate", err)
		}
		id, err := tx.insertID(ctx, `INSERT INTO certificates (key_id, name, der) VALUES (?, ?, ?)`, kid, name, der)
		if isUnique(err) {
			return exists(KindCertificate, name, keyName)
		}
		if err != nil {
			return dbErr("put certificate", err)
		}
		c.ID = id
		return nil
	})
	if err != nil {
		return Certificate{}, err
	}
	return c, nil
}

// GetCertificate returns the named certificate of the named key.
func (s *Store) GetCertificate(ctx context.Context, keyName, name string) (Certificate, error) {
	var c Certificate
	err := s.readTx(ctx, func(tx *txn) error {
		kid, err := keyID(ctx, tx, keyName)
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT id, name, der FROM certificates WHERE key_id = ? AND name = ?`,
			kid, name).Scan(&c.ID, &c.Name, &c.DER)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(KindCertificate, name, keyName)
		}
		if err != nil {
			return dbErr("get certificate", err)
		}
		c.KeyName = keyName
		return nil
	})
	return c, err
}

// ListCertificates returns the named key's certificates ordered by name.
func (s *Store) ListCertificates(ctx context.Context, keyName string) ([]Certificate, error) {
	var out []Certificate
	err := s.readTx(ctx, func(tx *txn) error {
		kid, err := keyID(ctx, tx, keyName)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, name, der FROM certificates WHERE key_id = ? ORDER BY name`, kid)
		if err != nil {
			return dbErr("list certificates", err)
		}
		defer rows.Close()
		for rows.Next() {
			c := Certificate{KeyName: keyName}
			if err := rows.Scan(&c.ID, &c.Name, &c.DER); err != nil {
				return dbErr("list certificates", err)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return dbErr("list certificates", err)
		}
		return nil
	})
	return out, err
}

// deleteCertificate deletes the named certificate of the named key.
func (s *Store) deleteCertificate(ctx context.Context, keyName, name string) error {
	return s.writeTx(ctx, func(tx *txn) error {
		kid, err := keyID(ctx, tx, keyName)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM certificates WHERE key_id = ? AND name = ?`, kid, name)
		if err != nil {
			return dbErr("delete certificate", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbErr("delete certificate", err)
		} else if n == 0 {
			return notFound(KindCertificate, name, keyName)
		}
		return nil
	})
}
