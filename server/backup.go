package server

// Wrapped key backup and restore (the ceremony's `key backup` and
// `key restore`). A backup file holds one key: the private key wrapped by
// the token under the deployment's wrap key, its public key, its metadata
// and certificates, and an HMAC-SHA256 under the backup MAC key that goes
// with the wrap key, computed and checked inside the token.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server/store"
)

// backupFormat names the backup file format and its version.
const backupFormat = "signet-key-backup-1"

// MaxBackupSize bounds a backup file (an RSA-4096 key with a few
// certificates is about 10 KiB).
const MaxBackupSize = 1 << 20

// backupFile is the file as written: the body's exact bytes and their MAC.
type backupFile struct {
	Body json.RawMessage `json:"signet_key_backup"`
	MAC  []byte          `json:"mac"`
}

// BackupBody is what a backup file says about its key.
type BackupBody struct {
	Format      string    `json:"format"`
	Created     time.Time `json:"created"`
	Actor       string    `json:"actor"`
	SourceToken string    `json:"source_token"`
	WrapKeyID   string    `json:"wrap_key_id"`
	Mechanism   string    `json:"mechanism"`
	Key         BackupKey `json:"key"`
	// Wrapped is the private key as C_WrapKey returned it.
	Wrapped []byte `json:"wrapped_private_key"`
}

// BackupKey is a backed-up key's public part and metadata.
type BackupKey struct {
	Name           string              `json:"name"`
	KeyType        string              `json:"key_type"`
	ObjectID       []byte              `json:"object_id"`
	PublicKey      []byte              `json:"public_key"` // PKIX DER
	PGPCreated     int64               `json:"pgp_created,omitempty"`
	Fingerprint    string              `json:"fingerprint,omitempty"`
	PGPCertificate []byte              `json:"pgp_certificate,omitempty"`
	Certificates   []BackupCertificate `json:"certificates,omitempty"`
	// Users had access to the key on the source server. Their grants do
	// not travel: each is the source token's PIN under the user's
	// passphrase, so they are made again on the target.
	Users []BackupUser `json:"users,omitempty"`
}

// BackupCertificate is a stored X.509 certificate of the key.
type BackupCertificate struct {
	Name string `json:"name"`
	DER  []byte `json:"der"`
}

// BackupUser is a user who had access to the key on the source server.
type BackupUser struct {
	Name     string `json:"name"`
	KeyAdmin bool   `json:"key_admin,omitempty"`
}

// macInput is what the MAC covers: a label and the body's exact bytes.
func macInput(body []byte) []byte {
	return append([]byte("signet key backup v1\x00"), body...)
}

// BackupOutput receives a backup file in two steps, so that the file
// exists only with its audit record: Stage writes it where nobody takes it
// yet (a temporary file), Publish then makes it the backup (links it to its
// name).
type BackupOutput interface {
	Stage(data []byte) error
	Publish() error
}

// BackupKey wraps the named key under the token's wrap key and returns the
// backup file. A backup changes nothing in the database but takes key
// material out of the token, so it is recorded before it is released: out,
// if not nil, stages the file first (a file that cannot be written is
// recorded as a failure), the step is recorded, and only then is the file
// published; if the record cannot be written nothing is published and the
// backup fails, and a file that cannot be published is recorded as a
// failure too. A key generated without backup is refused, saying so.
func (a *Admin) BackupKey(ctx context.Context, name string, p hsm.WrapProfile, dest string, out BackupOutput) ([]byte, error) {
	e := a.keyEntry(ctx, "key-backup", name, "")
	data, wrapID, err := a.backupKey(ctx, name, p)
	if err == nil && out != nil {
		err = out.Stage(data)
	}
	e.Detail = fmt.Sprintf("to %s, under wrap key %s with %s", dest, wrapID, hsm.MechanismName(p.Mechanism))
	if wrapID == "" {
		e.Detail = "to " + dest
	}
	if err != nil {
		return nil, a.record(ctx, e, err)
	}
	if err := a.RecordFirst(ctx, e); err != nil {
		return nil, err
	}
	if out != nil {
		if err := out.Publish(); err != nil {
			return nil, a.record(ctx, e, err)
		}
	}
	return data, nil
}

func (a *Admin) backupKey(ctx context.Context, name string, p hsm.WrapProfile) ([]byte, string, error) {
	if err := a.needToken(); err != nil {
		return nil, "", err
	}
	hk, k, err := a.Signer(ctx, name)
	if err != nil {
		return nil, "", err
	}
	wrapID, err := a.Token.WrapKeyID()
	if err != nil {
		return nil, "", err
	}
	wrapped, err := hk.Wrap(p, wrapID)
	if errors.Is(err, hsm.ErrNotBackupable) {
		return nil, wrapID, fmt.Errorf("key %q was generated without --backup: it is not extractable and can never leave the token (this is fixed when a key is generated); generate a new key with --backup to have one that can be backed up", name)
	}
	if err != nil {
		return nil, wrapID, err
	}
	bk := BackupKey{Name: k.Name, KeyType: k.KeyType, ObjectID: k.ObjectID, PublicKey: k.PublicKey,
		Fingerprint: k.Fingerprint, PGPCertificate: k.PGPCertificate}
	if !k.PGPCreated.IsZero() {
		bk.PGPCreated = k.PGPCreated.Unix()
	}
	certs, err := a.Store.ListCertificates(ctx, name)
	if err != nil {
		return nil, wrapID, err
	}
	for _, c := range certs {
		bk.Certificates = append(bk.Certificates, BackupCertificate{Name: c.Name, DER: c.DER})
	}
	acc, err := a.Store.ListAccesses(ctx, name)
	if err != nil {
		return nil, wrapID, err
	}
	for _, u := range acc {
		bk.Users = append(bk.Users, BackupUser{Name: u.UserName, KeyAdmin: u.KeyAdmin})
	}
	body, err := json.Marshal(BackupBody{Format: backupFormat, Created: a.now(), Actor: a.Actor, SourceToken: a.TokenName,
		WrapKeyID: wrapID, Mechanism: hsm.MechanismName(p.Mechanism), Key: bk, Wrapped: wrapped})
	if err != nil {
		return nil, wrapID, err
	}
	mac, err := a.Token.MAC(wrapID, macInput(body))
	if err != nil {
		return nil, wrapID, err
	}
	// The body goes in as it was MACed, byte for byte.
	macJSON, _ := json.Marshal(mac)
	var f bytes.Buffer
	f.WriteString("{\"signet_key_backup\":")
	f.Write(body)
	f.WriteString(",\n\"mac\":")
	f.Write(macJSON)
	f.WriteString("}\n")
	return f.Bytes(), wrapID, nil
}

// ParseBackup reads a backup file without checking its MAC (which needs
// the token): for messages and for RestoreKey.
func ParseBackup(data []byte) (BackupBody, []byte, []byte, error) {
	var f backupFile
	if len(data) > MaxBackupSize {
		return BackupBody{}, nil, nil, fmt.Errorf("larger than %d bytes: not a signet key backup", MaxBackupSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || dec.More() || len(f.Body) == 0 || len(f.MAC) == 0 {
		return BackupBody{}, nil, nil, errors.New("not a signet key backup, or a damaged one (it does not parse)")
	}
	var b BackupBody
	dec = json.NewDecoder(bytes.NewReader(f.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return BackupBody{}, nil, nil, errors.New("a damaged signet key backup (its body does not parse)")
	}
	if b.Format != backupFormat {
		return BackupBody{}, nil, nil, fmt.Errorf("backup format %q: this signet reads %s", b.Format, backupFormat)
	}
	return b, f.Body, f.MAC, nil
}

// RestoreKey recreates a backed-up key in this token and database: the
// private key (unwrapped inside the token, sensitive, extractable only
// under the wrap key as on the source), its public key object with the
// same id, its database row and certificates. It refuses a file whose MAC
// does not verify under this token's wrap key, a backup made under another
// wrap key, and a key name or object id already used by a different key.
// A key whose row is already in the database with the same public key
// (a database shared by several servers) is only added to the token.
func (a *Admin) RestoreKey(ctx context.Context, data []byte, p hsm.WrapProfile, source string) (store.Key, BackupBody, error) {
	b, body, mac, err := ParseBackup(data)
	e := TranscriptEntry{Operation: "key-restore", Key: b.Key.Name, KeyType: b.Key.KeyType, Fingerprint: b.Key.Fingerprint,
		Detail: "from " + source}
	if err != nil {
		return store.Key{}, b, a.record(ctx, e, err)
	}
	e.Detail = fmt.Sprintf("from %s: backup of %s by %s on token %q, wrap key %s", source,
		b.Created.Format(time.RFC3339), b.Actor, b.SourceToken, b.WrapKeyID)
	// The key's database row commits with the step's success record.
	ctx = a.audited(ctx, &e)
	k, _, err := a.restoreKey(ctx, &e, b, body, mac, p)
	return k, b, a.record(ctx, e, err)
}

// restoreKey does RestoreKey's work; it completes e's detail before the
// first database change, which carries e as its audit record.
func (a *Admin) restoreKey(ctx context.Context, e *TranscriptEntry, b BackupBody, body, mac []byte, p hsm.WrapProfile) (store.Key, string, error) {
	if err := a.needToken(); err != nil {
		return store.Key{}, "", err
	}
	wrapID, err := a.Token.WrapKeyID()
	if err != nil {
		return store.Key{}, "", err
	}
	if b.WrapKeyID != wrapID {
		return store.Key{}, "", fmt.Errorf("the backup was made under wrap key %s, but token %q holds wrap key %s: import the shares of wrap key %s into this token first (nothing was restored)", b.WrapKeyID, a.TokenName, wrapID, b.WrapKeyID)
	}
	if err := a.Token.VerifyMAC(wrapID, macInput(body), mac); err != nil {
		if errors.Is(err, hsm.ErrBadMAC) {
			return store.Key{}, "", fmt.Errorf("the backup file was changed or damaged: its MAC does not verify under wrap key %s (nothing was restored)", wrapID)
		}
		return store.Key{}, "", err
	}
	if m := hsm.MechanismName(p.Mechanism); b.Mechanism != m {
		return store.Key{}, "", fmt.Errorf("the backup was wrapped with %s, this token is configured for %s", b.Mechanism, m)
	}
	pub, err := x509.ParsePKIXPublicKey(b.Key.PublicKey)
	if err != nil {
		return store.Key{}, "", fmt.Errorf("the backup's public key: %w", err)
	}
	typ, err := hsm.KeyTypeOf(pub)
	if err != nil {
		return store.Key{}, "", err
	}
	if typ.String() != b.Key.KeyType {
		return store.Key{}, "", fmt.Errorf("the backup says %s, its public key is %s", b.Key.KeyType, typ)
	}
	if err := a.checkName(b.Key.Name); err != nil {
		return store.Key{}, "", err
	}

	// What is here already.
	dbKey, dbErr := a.Store.GetKey(ctx, b.Key.Name)
	inDB := dbErr == nil
	if dbErr != nil && !errors.Is(dbErr, store.ErrNotFound) {
		return store.Key{}, "", dbErr
	}
	if inDB && (!bytes.Equal(dbKey.PublicKey, b.Key.PublicKey) || !bytes.Equal(dbKey.ObjectID, b.Key.ObjectID)) {
		return store.Key{}, "", fmt.Errorf("a different key named %q is already in the database (fingerprint %s); restoring over it is refused (nothing was restored)", b.Key.Name, dbKey.Fingerprint)
	}
	if hk, err := a.Token.FindKey(b.Key.ObjectID, ""); err == nil {
		der, _ := x509.MarshalPKIXPublicKey(hk.Public())
		if !bytes.Equal(der, b.Key.PublicKey) {
			return store.Key{}, "", fmt.Errorf("token %q already holds a different key with object id %x (%q); restoring over it is refused (nothing was restored)", a.TokenName, b.Key.ObjectID, hk.Label())
		}
		if inDB {
			return store.Key{}, "", fmt.Errorf("key %q is already restored here: the token and the database hold it (nothing was changed)", b.Key.Name)
		}
		return store.Key{}, "", fmt.Errorf("token %q already holds key id %x (%q) but the database does not: delete it from the token first, or add it to the database by hand", a.TokenName, b.Key.ObjectID, hk.Label())
	} else if !errors.Is(err, hsm.ErrKeyNotFound) {
		return store.Key{}, "", err
	}
	if hk, err := a.Token.FindKey(nil, b.Key.Name); err == nil {
		return store.Key{}, "", fmt.Errorf("token %q already holds a key labelled %q with another id (%s); restoring over it is refused (nothing was restored)", a.TokenName, b.Key.Name, hk.IDHex())
	}

	hk, err := a.Token.Unwrap(p, hsm.UnwrapRequest{WrapKeyID: wrapID, Wrapped: b.Wrapped, Public: pub, Label: b.Key.Name, ID: b.Key.ObjectID})
	if err != nil {
		return store.Key{}, "", err
	}
	undo := func(err error) (store.Key, string, error) {
		if derr := a.Token.DeleteKey(hk.ID(), ""); derr != nil {
			err = fmt.Errorf("%w; removing the key from the token again also failed: %v", err, derr)
		}
		return store.Key{}, "", err
	}
	// The OpenPGP fingerprint follows from the key and its creation time:
	// recomputed with the restored key, it must be the one recorded.
	var created time.Time
	if b.Key.PGPCreated != 0 {
		created = time.Unix(b.Key.PGPCreated, 0).UTC()
		pk, err := openpgp.NewKey(hk, created)
		if err != nil {
			return undo(err)
		}
		if !strings.EqualFold(pk.FingerprintHex(), b.Key.Fingerprint) {
			return undo(fmt.Errorf("the restored key's OpenPGP fingerprint %s differs from the backup's %s", pk.FingerprintHex(), b.Key.Fingerprint))
		}
	}
	var users []string
	for _, u := range b.Key.Users {
		n := u.Name
		if u.KeyAdmin {
			n += " (key admin)"
		}
		users = append(users, n)
	}
	note := "no users had access on the source"
	if len(users) > 0 {
		note = "users with access on the source, to grant again here: " + strings.Join(users, ", ")
	}
	if inDB {
		note = "the database already had the key; added to the token only; " + note
		e.Detail += "; " + note
		return dbKey, note, nil
	}
	e.Detail += "; " + note
	k, err := a.Store.AddKey(ctx, store.Key{Name: b.Key.Name, KeyType: b.Key.KeyType, Token: a.TokenName,
		ObjectID: hk.ID(), PublicKey: b.Key.PublicKey, PGPCreated: created, PGPCertificate: b.Key.PGPCertificate,
		Fingerprint: b.Key.Fingerprint, Backup: true})
	if err != nil {
		return undo(err)
	}
	for _, c := range b.Key.Certificates {
		if _, err := a.Store.PutCertificate(ctx, k.Name, c.Name, c.DER, false); err != nil {
			a.Store.DeleteKey(ctx, k.Name)
			return undo(err)
		}
	}
	return k, note, nil
}

func (a *Admin) checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "\x00\n") || len(name) > 64 {
		return fmt.Errorf("key name %q must be 1 to 64 bytes without NUL or newline", name)
	}
	return nil
}

// RecordStep records a ceremony step that is not an Admin operation (the
// wrap key ceremony) in the audit table and the transcript, like every
// other step. It returns opErr, or the recording's failure.
func (a *Admin) RecordStep(ctx context.Context, e TranscriptEntry, opErr error) error {
	return a.record(ctx, e, opErr)
}
