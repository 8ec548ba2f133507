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

// DeleteUserRequest is delete-user: the user Name to remove and the
// calling administrator's Password.
type DeleteUserRequest struct {
	Name     string
	Password []byte
}

// DeleteUser removes a user without key accesses (ADMIN).
func (c *Client) DeleteUser(ctx context.Context, req DeleteUserRequest) error {
	sec, err := secrets("password", req.Password)
	_, err = c.simple(ctx, "delete-user", (&fieldList{}).str("name", req.Name), sec, err, nil)
	return err
}

// UserInfoRequest is user-info: the user Name asked about and the calling
// administrator's Password.
type UserInfoRequest struct {
	Name     string
	Password []byte
}

// UserInfo reports whether a user is an administrator (ADMIN).
func (c *Client) UserInfo(ctx context.Context, req UserInfoRequest) (admin bool, err error) {
	sec, err := secrets("password", req.Password)
	r, err := c.simple(ctx, "user-info", (&fieldList{}).str("name", req.Name), sec, err, nil)
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

// KeyUserInfoRequest is key-user-info: which User and Key, and the
// calling administrator's Password.
type KeyUserInfoRequest struct {
	User, Key string
	Password  []byte
}

// KeyUserInfo reports whether req.User can access req.Key and whether it
// is a key administrator (ADMIN). No access is an answer (access false),
// not an error (§8.3).
func (c *Client) KeyUserInfo(ctx context.Context, req KeyUserInfoRequest) (access, keyAdmin bool, err error) {
	sec, err := secrets("password", req.Password)
	if err != nil {
		return false, false, err
	}
	fl := (&fieldList{}).str("name", req.User).str("key", req.Key)
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

// ModifyKeyUserRequest is modify-key-user: whether User becomes (KeyAdmin)
// or stops being an administrator of Key, and the calling administrator's
// Password.
type ModifyKeyUserRequest struct {
	User, Key string
	KeyAdmin  bool
	Password  []byte
}

// ModifyKeyUser sets whether a user is an administrator of a key (ADMIN).
func (c *Client) ModifyKeyUser(ctx context.Context, req ModifyKeyUserRequest) error {
	sec, err := secrets("password", req.Password)
	_, err = c.simple(ctx, "modify-key-user", (&fieldList{}).str("name", req.User).str("key", req.Key).boolean("key-admin", req.KeyAdmin), sec, err, nil)
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

// DeleteKeyRequest is delete-key: the Key to delete and the calling
// administrator's Password.
type DeleteKeyRequest struct {
	Key      string
	Password []byte
}

// DeleteKey deletes a key and every access to it (ADMIN).
func (c *Client) DeleteKey(ctx context.Context, req DeleteKeyRequest) error {
	sec, err := secrets("password", req.Password)
	_, err = c.simple(ctx, "delete-key", (&fieldList{}).str("key", req.Key), sec, err, nil)
	return err
}

// ModifyKeyRequest is modify-key: Key is renamed NewName (if not empty);
// Password is the calling administrator's.
type ModifyKeyRequest struct {
	Key, NewName string
	Password     []byte
}

// ModifyKey renames a key (ADMIN).
func (c *Client) ModifyKey(ctx context.Context, req ModifyKeyRequest) error {
	sec, err := secrets("password", req.Password)
	_, err = c.simple(ctx, "modify-key", (&fieldList{}).str("key", req.Key).optStr("new-name", req.NewName), sec, err, nil)
	return err
}

// ListKeyUsersRequest is list-key-users: the Key, and an administrator's
// password or a key administrator's passphrase in Auth.
type ListKeyUsersRequest struct {
	Key  string
	Auth Auth
}

// ListKeyUsers returns the users who can access a key (ADMIN or
// KEY-ADMIN).
func (c *Client) ListKeyUsers(ctx context.Context, req ListKeyUsersRequest) ([]string, error) {
	sec, err := req.Auth.secrets()
	return c.list(ctx, "list-key-users", "num-users", (&fieldList{}).str("key", req.Key), sec, err)
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

// RevokeKeyAccessRequest is revoke-key-access: User loses access to Key;
// Auth holds an administrator's password or a key administrator's
// passphrase.
type RevokeKeyAccessRequest struct {
	Key, User string
	Auth      Auth
}

// RevokeKeyAccess removes a user's access to a key (ADMIN or KEY-ADMIN).
func (c *Client) RevokeKeyAccess(ctx context.Context, req RevokeKeyAccessRequest) error {
	sec, err := req.Auth.secrets()
	_, err = c.simple(ctx, "revoke-key-access", (&fieldList{}).str("key", req.Key).str("name", req.User), sec, err, nil)
	return err
}

// GetPublicKeyRequest is get-public-key: the Key, and an administrator's
// password or a key user's passphrase in Auth.
type GetPublicKeyRequest struct {
	Key  string
	Auth Auth
}

// GetPublicKey writes a key's public key to out (ADMIN or KEY-USER).
func (c *Client) GetPublicKey(ctx context.Context, req GetPublicKeyRequest, out io.Writer) error {
	sec, err := req.Auth.secrets()
	_, err = c.simple(ctx, "get-public-key", (&fieldList{}).str("key", req.Key), sec, err, out)
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

// ChangeKeyExpirationRequest is change-key-expiration: Key's expiry date
// becomes ExpireDate, YYYY-MM-DD, or is removed if ExpireDate is empty.
// Subkey, if not empty, is a decimal subkey index. Passphrase is the
// calling key administrator's.
type ChangeKeyExpirationRequest struct {
	Key, ExpireDate, Subkey string
	Passphrase              []byte
}

// ChangeKeyExpiration sets or removes a key's expiry date (KEY-ADMIN).
func (c *Client) ChangeKeyExpiration(ctx context.Context, req ChangeKeyExpirationRequest) error {
	sec, err := secrets("passphrase", req.Passphrase)
	fl := (&fieldList{}).str("key", req.Key)
	if req.ExpireDate != "" {
		if _, perr := time.Parse(time.DateOnly, req.ExpireDate); perr != nil && fl.err == nil {
			fl.err = fmt.Errorf("invalid expire date %q, want YYYY-MM-DD", req.ExpireDate)
		}
		fl.str("expire-date", req.ExpireDate)
	}
	fl.optStr("subkey", req.Subkey)
	_, err = c.simple(ctx, "change-key-expiration", fl, sec, err, nil)
	return err
}

// SignTextRequest is sign-text: Size bytes of In are signed by Key; the
// caller's Passphrase for Key unlocks it.
type SignTextRequest struct {
	Key        string
	Passphrase []byte
	In         io.Reader
	Size       int64
}

// SignText writes an OpenPGP cleartext signature of the text to out
// (KEY-USER).
func (c *Client) SignText(ctx context.Context, req SignTextRequest, out io.Writer) error {
	return c.sign(ctx, "sign-text", (&fieldList{}).str("key", req.Key), req.Passphrase, req.In, req.Size, out)
}

// SignDataRequest is sign-data: Size bytes of In are signed by Key,
// ASCII-armoured if Armor; the caller's Passphrase for Key unlocks it.
type SignDataRequest struct {
	Key        string
	Armor      bool
	Passphrase []byte
	In         io.Reader
	Size       int64
}

// SignData writes an OpenPGP detached signature of the data to out
// (KEY-USER).
func (c *Client) SignData(ctx context.Context, req SignDataRequest, out io.Writer) error {
	return c.sign(ctx, "sign-data", (&fieldList{}).str("key", req.Key).boolean("armor", req.Armor), req.Passphrase, req.In, req.Size, out)
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

// SignCertificateRequest is sign-certificate: which key issues the
// certificate (with its certificate IssuerCertificate, or self-signed
// when that is empty), for which key, and what it says. Passphrase is the
// caller's passphrase for IssuerKey.
type SignCertificateRequest struct {
	IssuerKey, IssuerCertificate   string
	SubjectKey, SubjectCertificate string
	// Subject is an RFC 4514 distinguished name ("CN=Secure Boot
	// signer,O=Example"); Validity is "<N>y"; Type is "ca",
	// "codesigning" or "sslserver".
	Subject, Validity, Type string
	Passphrase              []byte
}

// SignCertificate issues an X.509 certificate (KEY-USER of the issuer key)
// and writes it, PEM-encoded, to out. The server stores it under the
// subject key as SubjectCertificate, for sign-pe.
func (c *Client) SignCertificate(ctx context.Context, req SignCertificateRequest, out io.Writer) error {
	_, err := c.SignCertificateNotice(ctx, req, out)
	return err
}

// SignCertificateNotice is SignCertificate that also returns the message
// the server added to its OK reply, if any (signet's server says there
// when it shortened the validity to end with the issuer certificate's).
func (c *Client) SignCertificateNotice(ctx context.Context, req SignCertificateRequest, out io.Writer) (notice string, err error) {
	sec, err := secrets("passphrase", req.Passphrase)
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

// SignPERequest is sign-pe: the PE/EFI image read from In (Size bytes)
// is signed with Authenticode by Key with its stored certificate
// CertName. The image's existing signatures are kept unless Replace.
// Passphrase is the caller's passphrase for Key.
type SignPERequest struct {
	Key, CertName string
	Replace       bool
	Passphrase    []byte
	In            io.Reader
	Size          int64
}

// SignPE writes the signed image to out (KEY-USER).
func (c *Client) SignPE(ctx context.Context, req SignPERequest, out io.Writer) error {
	fl := (&fieldList{}).str("key", req.Key).str("cert-name", req.CertName)
	if req.Replace {
		fl.boolean("replace-signatures", true)
	}
	return c.sign(ctx, "sign-pe", fl, req.Passphrase, req.In, req.Size, out)
}

// DecryptRequest is decrypt: the OpenPGP message read from In (Size
// bytes), encrypted to Key; Passphrase is the caller's for Key.
type DecryptRequest struct {
	Key        string
	Passphrase []byte
	In         io.Reader
	Size       int64
}

// Decrypt writes the message's plaintext to out (KEY-USER). A message the
// server cannot decrypt gives DECRYPT_FAILED.
func (c *Client) Decrypt(ctx context.Context, req DecryptRequest, out io.Writer) error {
	return c.sign(ctx, "decrypt", (&fieldList{}).str("key", req.Key), req.Passphrase, req.In, req.Size, out)
}

// SignGitTagRequest is sign-git-tag: Tag is an annotated tag object (as
// git cat-file tag prints it, without a signature) to be signed by Key;
// Passphrase is the caller's for Key.
type SignGitTagRequest struct {
	Key        string
	Passphrase []byte
	Tag        []byte
}

// SignGitTag writes an armored detached signature of the tag to out
// (KEY-USER).
func (c *Client) SignGitTag(ctx context.Context, req SignGitTagRequest, out io.Writer) error {
	return c.sign(ctx, "sign-git-tag", (&fieldList{}).str("key", req.Key), req.Passphrase, bytes.NewReader(req.Tag), int64(len(req.Tag)), out)
}

// SignContainerRequest is sign-container: the image manifest read from
// In (Size bytes) is signed by Key for DockerReference; Passphrase is the
// caller's for Key.
type SignContainerRequest struct {
	Key, DockerReference string
	Passphrase           []byte
	In                   io.Reader
	Size                 int64
}

// SignContainer writes to out an "atomic container signature" (an
// OpenPGP signed message, as containers/image verifies) (KEY-USER).
func (c *Client) SignContainer(ctx context.Context, req SignContainerRequest, out io.Writer) error {
	return c.sign(ctx, "sign-container", (&fieldList{}).str("key", req.Key).str("docker-reference", req.DockerReference), req.Passphrase, req.In, req.Size, out)
}

// SignOSTreeRequest is sign-ostree: the OSTree commit object read from In
// (Size bytes), whose checksum is Hash, is signed by Key; Passphrase is
// the caller's for Key.
type SignOSTreeRequest struct {
	Key, Hash  string
	Passphrase []byte
	In         io.Reader
	Size       int64
}

// SignOSTree writes to out the commit's .commitmeta holding a detached
// signature (KEY-USER).
func (c *Client) SignOSTree(ctx context.Context, req SignOSTreeRequest, out io.Writer) error {
	return c.sign(ctx, "sign-ostree", (&fieldList{}).str("key", req.Key).str("ostree-hash", req.Hash), req.Passphrase, req.In, req.Size, out)
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
