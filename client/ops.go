package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/signet-project/signet/protocol"
)

// The typed operations below build the fields of PROTOCOL-v1 §8. Every
// secret argument ([]byte) is overwritten with zeros when the call returns.
// A nil secret is not sent at all; an empty non-nil one is sent empty.

// Auth authenticates operations that accept either a server
// administrator's password or a key user's passphrase (§8.1 "ADMIN or
// KEY-USER/KEY-ADMIN"). Exactly one should be set; Password wins.
type Auth struct {
	Password   []byte
	Passphrase []byte
}

func (a Auth) secrets() (protocol.Fields, error) {
	var s protocol.Fields
	var err error
	switch {
	case a.Password != nil:
		err = s.Set("password", a.Password)
	case a.Passphrase != nil:
		err = s.Set("passphrase", a.Passphrase)
	}
	a.zero()
	return s, err
}

func (a Auth) zero() { clear(a.Password); clear(a.Passphrase) }

// secrets builds an inner field block from name/value pairs, skipping nil
// values, and zeroes the values it was given.
func secrets(kv ...any) (protocol.Fields, error) {
	var s protocol.Fields
	var err error
	for i := 0; i+1 < len(kv); i += 2 {
		v, _ := kv[i+1].([]byte)
		if v != nil && err == nil {
			err = s.Set(kv[i].(string), v)
		}
		clear(v)
	}
	if err != nil {
		s.Zero()
		return nil, fmt.Errorf("secret: %w", err)
	}
	return s, nil
}

type fieldList struct {
	f   protocol.Fields
	err error
}

func (l *fieldList) str(k, v string) *fieldList {
	if l.err == nil {
		l.err = l.f.SetStr(k, v)
	}
	return l
}

func (l *fieldList) optStr(k, v string) *fieldList {
	if v != "" {
		l.str(k, v)
	}
	return l
}

func (l *fieldList) boolean(k string, v bool) *fieldList {
	if l.err == nil {
		l.err = l.f.SetBool(k, v)
	}
	return l
}

func (c *Client) simple(ctx context.Context, op string, fl *fieldList, sec protocol.Fields, secErr error, dst io.Writer) (*Reply, error) {
	defer sec.Zero()
	if secErr != nil {
		return nil, secErr
	}
	if fl == nil {
		fl = &fieldList{}
	}
	if fl.err != nil {
		return nil, fmt.Errorf("%s: %w", op, fl.err)
	}
	return c.Do(ctx, &Request{Op: op, Fields: fl.f, Secrets: sec}, dst)
}

// list runs a list operation and decodes its payload (§6.5): count entries
// each followed by a 00 byte, each a safe string.
func (c *Client) list(ctx context.Context, op, countField string, fl *fieldList, sec protocol.Fields, secErr error) ([]string, error) {
	max := c.MaxListPayload
	if max == 0 {
		max = 64 << 20
	}
	var buf bytes.Buffer
	w := &limitWriter{w: &buf, n: max}
	r, err := c.simple(ctx, op, fl, sec, secErr, w)
	if err != nil {
		return nil, err
	}
	n, err := r.Fields.U32(countField)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid reply: %w", op, err)
	}
	b := buf.Bytes()
	out := make([]string, 0, min(int(n), 1<<16))
	for range n {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, fmt.Errorf("%s: invalid reply: %d entries announced, payload holds %d", op, n, len(out))
		}
		e := string(b[:i])
		if !protocol.IsSafeString(e) {
			return nil, fmt.Errorf("%s: invalid reply: unprintable entry %q", op, e)
		}
		out = append(out, e)
		b = b[i+1:]
	}
	return out, nil
}

type limitWriter struct {
	w io.Writer
	n uint64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > l.n {
		return 0, fmt.Errorf("reply payload larger than %d bytes", l.n)
	}
	l.n -= uint64(len(p))
	return l.w.Write(p)
}

// ListUsers returns the server's user names (ADMIN).
func (c *Client) ListUsers(ctx context.Context, password []byte) ([]string, error) {
	sec, err := secrets("password", password)
	return c.list(ctx, "list-users", "num-users", nil, sec, err)
}

// NewUserRequest is new-user: the user to add and two secrets, named so
// that they cannot be swapped unnoticed.
type NewUserRequest struct {
	Name  string
	Admin bool
	// Password is the calling administrator's password.
	Password []byte
	// NewPassword is the new user's password; nil for a user without
	// one, who can never act as an administrator.
	NewPassword []byte
}

// NewUser adds a user (ADMIN).
func (c *Client) NewUser(ctx context.Context, req NewUserRequest) error {
	sec, err := secrets("password", req.Password, "new-password", req.NewPassword)
	_, err = c.simple(ctx, "new-user", (&fieldList{}).str("name", req.Name).boolean("admin", req.Admin), sec, err, nil)
	return err
}

// DeleteUser removes a user without key accesses (ADMIN).
func (c *Client) DeleteUser(ctx context.Context, name string, password []byte) error {
	sec, err := secrets("password", password)
	_, err = c.simple(ctx, "delete-user", (&fieldList{}).str("name", name), sec, err, nil)
	return err
}

// UserInfo reports whether a user is an administrator (ADMIN).
func (c *Client) UserInfo(ctx context.Context, name string, password []byte) (admin bool, err error) {
	sec, err := secrets("password", password)
	r, err := c.simple(ctx, "user-info", (&fieldList{}).str("name", name), sec, err, nil)
	if err != nil {
		return false, err
	}
	if admin, err = r.Fields.Bool("admin"); err != nil {
		return false, fmt.Errorf("user-info: invalid reply: %w", err)
	}
	return admin, nil
}

// ModifyUserRequest is modify-user: what changes (Admin if not nil, the
// name if NewName is not empty, the password if NewPassword is not nil)
// and the calling administrator's Password.
type ModifyUserRequest struct {
	Name        string
	Admin       *bool
	NewName     string
	Password    []byte
	NewPassword []byte
}

// ModifyUser changes a user (ADMIN).
func (c *Client) ModifyUser(ctx context.Context, req ModifyUserRequest) error {
	sec, err := secrets("password", req.Password, "new-password", req.NewPassword)
	fl := (&fieldList{}).str("name", req.Name)
	if req.Admin != nil {
		fl.boolean("admin", *req.Admin)
	}
	fl.optStr("new-name", req.NewName)
	_, err = c.simple(ctx, "modify-user", fl, sec, err, nil)
	return err
}

// KeyUserInfo reports whether user can access key and whether it is a key
// administrator (ADMIN). No access is an answer (access false), not an
// error (§8.3).
func (c *Client) KeyUserInfo(ctx context.Context, user, key string, password []byte) (access, keyAdmin bool, err error) {
	sec, err := secrets("password", password)
	if err != nil {
		return false, false, err
	}
	fl := (&fieldList{}).str("name", user).str("key", key)
	if fl.err != nil {
		sec.Zero()
		return false, false, fl.err
	}
	r, err := c.Do(ctx, &Request{Op: "key-user-info", Fields: fl.f, Secrets: sec,
		Expect: []protocol.ErrorCode{protocol.CodeKeyUserNotFound}}, nil)
	if err != nil {
		return false, false, err
	}
	if r.Code == protocol.CodeKeyUserNotFound {
		return false, false, nil
	}
	if keyAdmin, err = r.Fields.Bool("key-admin"); err != nil {
		return false, false, fmt.Errorf("key-user-info: invalid reply: %w", err)
	}
	return true, keyAdmin, nil
}

// ModifyKeyUser sets whether user is an administrator of key (ADMIN).
func (c *Client) ModifyKeyUser(ctx context.Context, user, key string, keyAdmin bool, password []byte) error {
	sec, err := secrets("password", password)
	_, err = c.simple(ctx, "modify-key-user", (&fieldList{}).str("name", user).str("key", key).boolean("key-admin", keyAdmin), sec, err, nil)
	return err
}

// ListKeys returns the keys as "NAME (TYPE)" (ADMIN).
func (c *Client) ListKeys(ctx context.Context, password []byte) ([]string, error) {
	sec, err := secrets("password", password)
	return c.list(ctx, "list-keys", "num-keys", nil, sec, err)
}

// NewKeyOptions are new-key's optional fields.
type NewKeyOptions struct {
	KeyType                          string // gnupg (default), RSA or ECC
	KeyAdmin                         string // initial key administrator (default: the caller)
	NameReal, NameComment, NameEmail string // gnupg user ID
	ExpireDate                       string // YYYY-MM-DD
}

// NewKeyRequest is new-key: the key's name and options, the calling
// administrator's Password, and the Passphrase the initial key
// administrator will use for the new key.
type NewKeyRequest struct {
	Key string
	NewKeyOptions
	Password   []byte
	Passphrase []byte
}

// NewKey makes a key (ADMIN). The public key is written to out.
func (c *Client) NewKey(ctx context.Context, req NewKeyRequest, out io.Writer) error {
	sec, err := secrets("password", req.Password, "passphrase", req.Passphrase)
	o := req.NewKeyOptions
	kt := o.KeyType
	if kt == "" {
		kt = "gnupg"
	}
	fl := (&fieldList{}).str("key", req.Key).str("keytype", kt).optStr("initial-key-admin", o.KeyAdmin).
		optStr("name-real", o.NameReal).optStr("name-comment", o.NameComment).optStr("name-email", o.NameEmail)
	if o.ExpireDate != "" {
		if _, perr := time.Parse(time.DateOnly, o.ExpireDate); perr != nil && fl.err == nil {
			fl.err = fmt.Errorf("invalid expire date %q, want YYYY-MM-DD", o.ExpireDate)
		}
		fl.str("expire-date", o.ExpireDate)
	}
	_, err = c.simple(ctx, "new-key", fl, sec, err, out)
	return err
}

// ImportKeyRequest is import-key: In holds Size bytes of a secret key
// file. It carries three secrets, named so that they cannot be swapped
// unnoticed.
type ImportKeyRequest struct {
	Key      string
	KeyType  string // optional: gnupg (the server's default), RSA or ECC
	KeyAdmin string // optional initial key administrator (default: the caller)
	In       io.Reader
	Size     int64
	// Password is the calling administrator's password.
	Password []byte
	// Passphrase protects the key material in In.
	Passphrase []byte
	// NewPassphrase becomes the initial key administrator's passphrase.
	NewPassphrase []byte
}

// ImportKey imports a secret key (ADMIN).
func (c *Client) ImportKey(ctx context.Context, req ImportKeyRequest) error {
	sec, err := secrets("password", req.Password, "passphrase", req.Passphrase, "new-passphrase", req.NewPassphrase)
	defer sec.Zero()
	if err != nil {
		return err
	}
	fl := (&fieldList{}).str("key", req.Key).optStr("keytype", req.KeyType).optStr("initial-key-admin", req.KeyAdmin)
	if fl.err != nil {
		return fl.err
	}
	_, err = c.Do(ctx, &Request{Op: "import-key", Fields: fl.f, Secrets: sec, Payload: req.In, PayloadSize: req.Size}, nil)
	return err
}

// DeleteKey deletes a key and every access to it (ADMIN).
func (c *Client) DeleteKey(ctx context.Context, key string, password []byte) error {
	sec, err := secrets("password", password)
	_, err = c.simple(ctx, "delete-key", (&fieldList{}).str("key", key), sec, err, nil)
	return err
}

// ModifyKey renames a key (ADMIN).
func (c *Client) ModifyKey(ctx context.Context, key, newName string, password []byte) error {
	sec, err := secrets("password", password)
	_, err = c.simple(ctx, "modify-key", (&fieldList{}).str("key", key).optStr("new-name", newName), sec, err, nil)
	return err
}

// ListKeyUsers returns the users who can access key (ADMIN or KEY-ADMIN).
func (c *Client) ListKeyUsers(ctx context.Context, key string, auth Auth) ([]string, error) {
	sec, err := auth.secrets()
	return c.list(ctx, "list-key-users", "num-users", (&fieldList{}).str("key", key), sec, err)
}

// GrantKeyAccessRequest is grant-key-access: Passphrase is the calling
// key administrator's, NewPassphrase the one User will use for Key.
type GrantKeyAccessRequest struct {
	Key, User     string
	Passphrase    []byte
	NewPassphrase []byte
	// ServerBinding, if set, is Sigul's server-binding JSON: how the
	// server should bind the new passphrase (signet's server supports no
	// binding method and refuses any).
	ServerBinding string
}

// GrantKeyAccess gives a user access to a key (KEY-ADMIN).
func (c *Client) GrantKeyAccess(ctx context.Context, req GrantKeyAccessRequest) error {
	sec, err := secrets("passphrase", req.Passphrase, "new-passphrase", req.NewPassphrase)
	sec, err = withServerBinding(sec, err, req.ServerBinding)
	_, err = c.simple(ctx, "grant-key-access", (&fieldList{}).str("key", req.Key).str("name", req.User), sec, err, nil)
	return err
}

// RevokeKeyAccess removes user's access to key (ADMIN or KEY-ADMIN).
func (c *Client) RevokeKeyAccess(ctx context.Context, key, user string, auth Auth) error {
	sec, err := auth.secrets()
	_, err = c.simple(ctx, "revoke-key-access", (&fieldList{}).str("key", key).str("name", user), sec, err, nil)
	return err
}

// GetPublicKey writes key's public key to out (ADMIN or KEY-USER).
func (c *Client) GetPublicKey(ctx context.Context, key string, auth Auth, out io.Writer) error {
	sec, err := auth.secrets()
	_, err = c.simple(ctx, "get-public-key", (&fieldList{}).str("key", key), sec, err, out)
	return err
}

// ChangePassphraseRequest is change-passphrase: the caller's current
// Passphrase for Key and the NewPassphrase that replaces it.
type ChangePassphraseRequest struct {
	Key           string
	Passphrase    []byte
	NewPassphrase []byte
	// ServerBinding is as in GrantKeyAccessRequest.
	ServerBinding string
}

// ChangePassphrase replaces the caller's passphrase for a key (KEY-USER).
func (c *Client) ChangePassphrase(ctx context.Context, req ChangePassphraseRequest) error {
	sec, err := secrets("passphrase", req.Passphrase, "new-passphrase", req.NewPassphrase)
	sec, err = withServerBinding(sec, err, req.ServerBinding)
	_, err = c.simple(ctx, "change-passphrase", (&fieldList{}).str("key", req.Key), sec, err, nil)
	return err
}

// ChangeKeyExpiration sets key's expiry date, YYYY-MM-DD, or removes it if
// expireDate is empty (KEY-ADMIN). subkey, if not empty, is a decimal
// subkey index.
func (c *Client) ChangeKeyExpiration(ctx context.Context, key, expireDate, subkey string, passphrase []byte) error {
	sec, err := secrets("passphrase", passphrase)
	fl := (&fieldList{}).str("key", key)
	if expireDate != "" {
		if _, perr := time.Parse(time.DateOnly, expireDate); perr != nil && fl.err == nil {
			fl.err = fmt.Errorf("invalid expire date %q, want YYYY-MM-DD", expireDate)
		}
		fl.str("expire-date", expireDate)
	}
	fl.optStr("subkey", subkey)
	_, err = c.simple(ctx, "change-key-expiration", fl, sec, err, nil)
	return err
}

// SignText writes an OpenPGP cleartext signature of size bytes of in to
// out (KEY-USER).
func (c *Client) SignText(ctx context.Context, key string, passphrase []byte, in io.Reader, size int64, out io.Writer) error {
	return c.sign(ctx, "sign-text", (&fieldList{}).str("key", key), passphrase, in, size, out)
}

// SignData writes an OpenPGP detached signature of size bytes of in to
// out, ASCII-armoured if armor (KEY-USER).
func (c *Client) SignData(ctx context.Context, key string, armor bool, passphrase []byte, in io.Reader, size int64, out io.Writer) error {
	return c.sign(ctx, "sign-data", (&fieldList{}).str("key", key).boolean("armor", armor), passphrase, in, size, out)
}

func (c *Client) sign(ctx context.Context, op string, fl *fieldList, passphrase []byte, in io.Reader, size int64, out io.Writer) error {
	sec, err := secrets("passphrase", passphrase)
	defer sec.Zero()
	if err != nil {
		return err
	}
	if fl.err != nil {
		return fmt.Errorf("%s: %w", op, fl.err)
	}
	_, err = c.Do(ctx, &Request{Op: op, Fields: fl.f, Secrets: sec, Payload: in, PayloadSize: size}, out)
	return err
}

// CertificateRequest describes a certificate for sign-certificate: which
// key issues it (with its certificate IssuerCertificate, or self-signed
// when that is empty), for which key, and what it says.
type CertificateRequest struct {
	IssuerKey, IssuerCertificate   string
	SubjectKey, SubjectCertificate string
	// Subject is an RFC 4514 distinguished name ("CN=Secure Boot
	// signer,O=Example"); Validity is "<N>y"; Type is "ca",
	// "codesigning" or "sslserver".
	Subject, Validity, Type string
}

// SignCertificate issues an X.509 certificate (KEY-USER of the issuer key)
// and writes it, PEM-encoded, to out. The server stores it under the
// subject key as SubjectCertificate, for sign-pe.
func (c *Client) SignCertificate(ctx context.Context, req CertificateRequest, passphrase []byte, out io.Writer) error {
	_, err := c.SignCertificateNotice(ctx, req, passphrase, out)
	return err
}

// SignCertificateNotice is SignCertificate that also returns the message
// the server added to its OK reply, if any (signet's server says there
// when it shortened the validity to end with the issuer certificate's).
func (c *Client) SignCertificateNotice(ctx context.Context, req CertificateRequest, passphrase []byte, out io.Writer) (notice string, err error) {
	sec, err := secrets("passphrase", passphrase)
	fl := (&fieldList{}).str("issuer-key", req.IssuerKey).optStr("issuer-certificate-name", req.IssuerCertificate).
		str("subject-key", req.SubjectKey).str("subject-certificate-name", req.SubjectCertificate).
		str("subject", req.Subject).str("validity", req.Validity).str("certificate-type", req.Type)
	r, err := c.simple(ctx, "sign-certificate", fl, sec, err, out)
	if err != nil {
		return "", err
	}
	msg, _ := r.Fields.Str(protocol.FieldMessage)
	return msg, nil
}

// SignPE writes to out the PE/EFI image read from in (size bytes), signed
// with Authenticode by key with its stored certificate certName. The
// image's existing signatures are kept unless replace.
func (c *Client) SignPE(ctx context.Context, key, certName string, replace bool, passphrase []byte, in io.Reader, size int64, out io.Writer) error {
	fl := (&fieldList{}).str("key", key).str("cert-name", certName)
	if replace {
		fl.boolean("replace-signatures", true)
	}
	return c.sign(ctx, "sign-pe", fl, passphrase, in, size, out)
}

// Decrypt writes the plaintext of the OpenPGP message read from in (size
// bytes), encrypted to key, to out (KEY-USER). A message the server cannot
// decrypt gives DECRYPT_FAILED.
func (c *Client) Decrypt(ctx context.Context, key string, passphrase []byte, in io.Reader, size int64, out io.Writer) error {
	return c.sign(ctx, "decrypt", (&fieldList{}).str("key", key), passphrase, in, size, out)
}

// SignGitTag writes an armored detached signature of an annotated tag
// object (as git cat-file tag prints it, without a signature) to out.
func (c *Client) SignGitTag(ctx context.Context, key string, passphrase []byte, tag []byte, out io.Writer) error {
	return c.sign(ctx, "sign-git-tag", (&fieldList{}).str("key", key), passphrase, bytes.NewReader(tag), int64(len(tag)), out)
}

// SignContainer writes to out an "atomic container signature" for the
// image manifest read from in, for dockerReference (an OpenPGP signed
// message, as containers/image verifies).
func (c *Client) SignContainer(ctx context.Context, key, dockerReference string, passphrase []byte, in io.Reader, size int64, out io.Writer) error {
	return c.sign(ctx, "sign-container", (&fieldList{}).str("key", key).str("docker-reference", dockerReference), passphrase, in, size, out)
}

// SignOSTree writes to out the .commitmeta of an OSTree commit object
// read from in, whose checksum is hash, holding a detached signature.
func (c *Client) SignOSTree(ctx context.Context, key, hash string, passphrase []byte, in io.Reader, size int64, out io.Writer) error {
	return c.sign(ctx, "sign-ostree", (&fieldList{}).str("key", key).str("ostree-hash", hash), passphrase, in, size, out)
}

// ListBindingMethods returns the passphrase binding methods the server
// supports (ADMIN); the client command is list-server-binding-methods.
func (c *Client) ListBindingMethods(ctx context.Context, password []byte) ([]string, error) {
	sec, err := secrets("password", password)
	return c.list(ctx, "list-binding-methods", "num-methods", nil, sec, err)
}

// withServerBinding adds the server-binding inner field when b is set.
func withServerBinding(sec protocol.Fields, err error, b string) (protocol.Fields, error) {
	if b == "" || err != nil {
		return sec, err
	}
	if err := sec.SetStr("server-binding", b); err != nil {
		sec.Zero()
		return nil, fmt.Errorf("server binding: %w", err)
	}
	return sec, nil
}
