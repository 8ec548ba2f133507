package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/signet-project/signet/formats/openpgp"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

// Request is one request as the handlers see it, after the protocol layer
// has checked its structure, its hashes and its MAC keys.
type Request struct {
	Op   string
	User string
	// CN is the subject CN of the client's inner TLS certificate.
	CN string
	// Fields are the outer fields; Secrets the inner ones (password,
	// passphrase, new-password, new-passphrase, ...).
	Fields  map[string][]byte
	Secrets map[string][]byte
	// Payload is the request payload, PayloadSize bytes; PayloadSHA512
	// its digest (recorded in the audit log), when the caller has it.
	Payload       io.Reader
	PayloadSize   int64
	PayloadSHA512 []byte
	// PayloadAt, when set, reads the same payload at any offset (the
	// connection spools every payload); PayloadAuthenticated says the
	// client sent the payload's hash and it matched (optional for
	// sign-rpm, §7.10).
	PayloadAt            io.ReaderAt
	PayloadAuthenticated bool
}

// Field is one reply field, in order.
type Field struct {
	Key   string
	Value []byte
}

// Response is a handler's answer: a status, fields and a payload.
type Response struct {
	Status      protocol.ErrorCode
	Fields      []Field
	Payload     io.Reader // closed after sending if it is an io.Closer
	PayloadSize int64
	// Audit is what the audit record says of the request besides its
	// size and digest: what was signed (an RPM's NEVRA and header digest,
	// a PE image's digest, machine and certificate).
	Audit string
	// Batch, set on an OK reply to sign-rpms, serves the sub-phase that
	// follows the reply (§7).
	Batch Batch
}

// Drop is returned when the request must be answered with no reply at all
// (PROTOCOL-v1 §6.6): the connection is closed.
var ErrDrop = errors.New("request dropped")

// refusal is an error reply with a code and, rarely, a message.
type refusal struct {
	status  protocol.ErrorCode
	message string
}

func (r *refusal) Error() string {
	if r.message != "" {
		return fmt.Sprintf("status %d: %s", r.status, r.message)
	}
	return fmt.Sprintf("status %d", r.status)
}

func refuse(s protocol.ErrorCode) error { return &refusal{status: s} }

// Handlers serve Sigul's operations over the store and the token.
type Handlers struct {
	Store *store.Store
	Token *hsm.Token
	Auth  *Authenticator
	// TokenName is recorded with new keys.
	TokenName string
	// PIN is the token PIN given to the server at start, needed only by
	// new-key and import-key; nil refuses them with a pointer to the
	// ceremony commands.
	PIN []byte
	KDF hsm.KDFParams
	Log *slog.Logger
	// Metrics, if set, counts requests by operation and outcome.
	Metrics *Metrics
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// SpoolDir holds signed outputs (RPMs, PE images) while they are
	// sent, as unlinked files (default: the system's temporary directory).
	SpoolDir string

	// keys caches token keys by database row, so that a request does not
	// search the token (slow on SoftHSM2, which rescans its files); an
	// entry is used only while the row's public key is unchanged.
	keysMu sync.Mutex
	keys   map[int64]cachedKey
}

type cachedKey struct {
	hk  *hsm.Key
	pub []byte // the row's public key when cached
}

// The operations served, by wire name.
var handlers = map[string]func(h *Handlers, ctx context.Context, r *Request) (*Response, error){
	"list-users":            (*Handlers).listUsers,
	"new-user":              (*Handlers).newUser,
	"delete-user":           (*Handlers).deleteUser,
	"user-info":             (*Handlers).userInfo,
	"modify-user":           (*Handlers).modifyUser,
	"key-user-info":         (*Handlers).keyUserInfo,
	"modify-key-user":       (*Handlers).modifyKeyUser,
	"list-keys":             (*Handlers).listKeys,
	"delete-key":            (*Handlers).deleteKey,
	"modify-key":            (*Handlers).modifyKey,
	"list-key-users":        (*Handlers).listKeyUsers,
	"grant-key-access":      (*Handlers).grantKeyAccess,
	"revoke-key-access":     (*Handlers).revokeKeyAccess,
	"get-public-key":        (*Handlers).getPublicKey,
	"change-passphrase":     (*Handlers).changePassphrase,
	"sign-data":             (*Handlers).signData,
	"sign-text":             (*Handlers).signText,
	"change-key-expiration": (*Handlers).changeKeyExpiration,
	"new-key":               (*Handlers).newKey,
	"import-key":            (*Handlers).importKey,
	"sign-rpm":              (*Handlers).signRPM,
	"sign-rpms":             (*Handlers).signRPMs,
	"sign-certificate":      (*Handlers).signCertificate,
	"sign-pe":               (*Handlers).signPE,
	"decrypt":               (*Handlers).decrypt,
	"sign-git-tag":          (*Handlers).signGitTag,
	"sign-container":        (*Handlers).signContainer,
	"sign-ostree":           (*Handlers).signOSTree,
}

// Serve runs one request and returns its reply. It returns ErrDrop when
// the request must get no reply. Every outcome is audited.
func (h *Handlers) Serve(ctx context.Context, r *Request) (resp *Response, err error) {
	start := time.Now()
	defer func() {
		var st protocol.ErrorCode
		if resp != nil {
			st = resp.Status
		}
		op := r.Op
		if _, known := handlers[op]; !known {
			op = "unknown" // bounded label values
		}
		h.Metrics.observe(op, st, err != nil, time.Since(start))
		h.log().Info("request", "op", r.Op, "user", r.User, "key", string(r.Fields["key"]), "status", uint32(st), "dropped", err != nil, "took", time.Since(start))
	}()
	fn, ok := handlers[r.Op]
	if _, sigul := protocol.LookupOp(r.Op); !ok && sigul {
		return h.finish(ctx, r, nil, &refusal{status: protocol.CodeUnknownError, message: "signet does not serve " + r.Op + " yet"})
	}
	if !ok {
		// Authenticates nobody (PROTOCOL-v1 §6.2).
		return h.finish(ctx, r, nil, refuse(protocol.CodeUnknownOp))
	}
	if err := h.Auth.CheckIdentity(r.CN, r.User); err != nil {
		return h.finish(ctx, r, nil, err)
	}
	out, ferr := fn(h, ctx, r)
	return h.finish(ctx, r, out, ferr)
}

// finish turns errors into replies and writes the audit record. A reply
// whose record cannot be written is not sent: the request is dropped.
func (h *Handlers) finish(ctx context.Context, r *Request, resp *Response, err error) (*Response, error) {
	var ref *refusal
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrDrop):
		result = "dropped: " + err.Error()
	case errors.Is(err, ErrAuthFailed):
		resp, result = &Response{Status: protocol.CodeAuthenticationFailed}, "authentication failed"
	case errors.As(err, &ref):
		resp, result = &Response{Status: ref.status}, err.Error()
		if ref.message != "" {
			resp.Fields = []Field{{"message", []byte(safeMessage(ref.message))}}
		}
	default:
		h.log().Error("request failed", "op", r.Op, "user", r.User, "err", err)
		resp, result = &Response{Status: protocol.CodeUnknownError}, "error: "+err.Error()
	}
	key := string(r.Fields["key"])
	if key == "" {
		key = string(r.Fields["issuer-key"]) // sign-certificate
	}
	digest := ""
	if r.PayloadSize > 0 && len(r.PayloadSHA512) > 0 {
		digest = fmt.Sprintf("sha512:%x", r.PayloadSHA512)
	}
	detail := fmt.Sprintf("cn=%s size=%d", r.CN, r.PayloadSize)
	if resp != nil && resp.Audit != "" {
		detail += " " + resp.Audit
	}
	if _, aerr := h.Store.AppendAudit(ctx, store.AuditRecord{
		Actor: r.User, Operation: r.Op, KeyName: key, Detail: detail,
		Digest: digest, Result: result,
	}); aerr != nil {
		if resp != nil {
			closePayload(resp.Payload)
			if resp.Batch != nil {
				resp.Batch.Close()
			}
		}
		h.log().Error("audit record could not be written; dropping the reply", "op", r.Op, "err", aerr)
		return nil, fmt.Errorf("%w: audit: %v", ErrDrop, aerr)
	}
	if errors.Is(err, ErrDrop) {
		return nil, err
	}
	if resp.Payload == nil {
		resp.Payload = bytes.NewReader(nil)
	}
	return resp, nil
}

func (h *Handlers) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// safeMessage makes text fit a reply's message field (§6.4): printable
// ASCII (the protocol's safe strings), at most 255 bytes. Other characters
// become '?', an ellipsis "...", line breaks "; ".
func safeMessage(s string) string {
	s = strings.NewReplacer("\u2026", "...", "\r\n", "; ", "\n", "; ", "\t", " ").Replace(s)
	b := []byte(s)
	out := b[:0]
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x20 && r < 0x7f {
			out = append(out, byte(r))
		} else {
			out = append(out, '?')
		}
		i += size
	}
	return truncate(string(out), 255)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// str returns a required string field, dropping the request without it.
func str(r *Request, name string) (string, error) {
	v, ok := r.Fields[name]
	if !ok {
		return "", fmt.Errorf("%w: field %q is missing", ErrDrop, name)
	}
	return string(v), nil
}

// optBool returns a bool field, or def when it is absent.
func optBool(r *Request, name string, def bool) (bool, error) {
	v, ok := r.Fields[name]
	if !ok {
		return def, nil
	}
	if len(v) != 1 || v[0] > 1 {
		return false, fmt.Errorf("%w: field %q is not a bool", ErrDrop, name)
	}
	return v[0] == 1, nil
}

func boolValue(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

func u32(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

// list is a reply listing names, each followed by a 00 byte.
func list(countField string, names []string) *Response {
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
	}
	return &Response{Fields: []Field{{countField, u32(len(names))}}, Payload: bytes.NewReader(b.Bytes()), PayloadSize: int64(b.Len())}
}

func withPayload(b []byte) *Response {
	return &Response{Payload: bytes.NewReader(b), PayloadSize: int64(len(b))}
}

func (h *Handlers) admin(ctx context.Context, r *Request) error {
	return h.Auth.Admin(ctx, r.User, r.Secrets["password"])
}

// adminAnd runs the ADMIN class, then returns the required string field
// the operation is about (user name or key name).
func (h *Handlers) adminAnd(ctx context.Context, r *Request, field string) (string, error) {
	if err := h.admin(ctx, r); err != nil {
		return "", err
	}
	return str(r, field)
}

// storeStatus maps store errors to Sigul's codes.
func storeStatus(err error) error {
	var nf *store.NotFoundError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf):
		switch nf.Kind {
		case store.KindUser:
			return refuse(protocol.CodeUserNotFound)
		case store.KindKey:
			return refuse(protocol.CodeKeyNotFound)
		case store.KindAccess:
			return refuse(protocol.CodeKeyUserNotFound)
		}
	case errors.Is(err, store.ErrExists):
		return refuse(protocol.CodeAlreadyExists)
	case errors.Is(err, store.ErrInUse):
		return refuse(protocol.CodeUserHasKeyAccesses)
	case errors.Is(err, store.ErrLastAccess):
		return refuse(protocol.CodeOnlyOneKeyUser)
	}
	return err
}

func (h *Handlers) listUsers(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	users, err := h.Store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Name
	}
	return list("num-users", names), nil
}

func (h *Handlers) newUser(ctx context.Context, r *Request) (*Response, error) {
	name, err := h.adminAnd(ctx, r, "name")
	if err != nil {
		return nil, err
	}
	admin, err := optBool(r, "admin", false)
	if err != nil {
		return nil, err
	}
	u := store.User{Name: name, Admin: admin}
	if pw := r.Secrets["new-password"]; len(pw) > 0 {
		if u.PasswordHash, err = store.HashPassword(pw); err != nil {
			return nil, err
		}
	}
	_, err = h.Store.AddUser(ctx, u)
	return &Response{}, storeStatus(err)
}

func (h *Handlers) deleteUser(ctx context.Context, r *Request) (*Response, error) {
	name, err := h.adminAnd(ctx, r, "name")
	if err != nil {
		return nil, err
	}
	return &Response{}, storeStatus(h.Store.DeleteUser(ctx, name, false))
}

func (h *Handlers) userInfo(ctx context.Context, r *Request) (*Response, error) {
	name, err := h.adminAnd(ctx, r, "name")
	if err != nil {
		return nil, err
	}
	u, err := h.Store.GetUser(ctx, name)
	if err != nil {
		return nil, storeStatus(err)
	}
	return &Response{Fields: []Field{{"admin", boolValue(u.Admin)}}}, nil
}

func (h *Handlers) modifyUser(ctx context.Context, r *Request) (*Response, error) {
	name, err := h.adminAnd(ctx, r, "name")
	if err != nil {
		return nil, err
	}
	var upd store.UserUpdate
	if _, ok := r.Fields["admin"]; ok {
		admin, err := optBool(r, "admin", false)
		if err != nil {
			return nil, err
		}
		upd.Admin = &admin
	}
	if v, ok := r.Fields["new-name"]; ok {
		n := string(v)
		upd.Name = &n
	}
	if pw := r.Secrets["new-password"]; len(pw) > 0 {
		hash, err := store.HashPassword(pw)
		if err != nil {
			return nil, err
		}
		upd.PasswordHash = &hash
	}
	_, err = h.Store.UpdateUser(ctx, name, upd)
	return &Response{}, storeStatus(err)
}

// userAndKey looks up the outer name and key fields in Sigul's order:
// the user first, then the key.
func (h *Handlers) userAndKey(ctx context.Context, r *Request) (string, string, error) {
	name, err := str(r, "name")
	if err != nil {
		return "", "", err
	}
	key, err := str(r, "key")
	if err != nil {
		return "", "", err
	}
	if _, err := h.Store.GetUser(ctx, name); err != nil {
		return "", "", storeStatus(err)
	}
	if _, err := h.Store.GetKey(ctx, key); err != nil {
		return "", "", storeStatus(err)
	}
	return name, key, nil
}

func (h *Handlers) keyUserInfo(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	name, key, err := h.userAndKey(ctx, r)
	if err != nil {
		return nil, err
	}
	acc, err := h.Store.GetAccess(ctx, key, name)
	if err != nil {
		return nil, storeStatus(err)
	}
	return &Response{Fields: []Field{{"key-admin", boolValue(acc.KeyAdmin)}}}, nil
}

func (h *Handlers) modifyKeyUser(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	name, key, err := h.userAndKey(ctx, r)
	if err != nil {
		return nil, err
	}
	var upd store.AccessUpdate
	if _, ok := r.Fields["key-admin"]; ok {
		ka, err := optBool(r, "key-admin", false)
		if err != nil {
			return nil, err
		}
		upd.KeyAdmin = &ka
	}
	_, err = h.Store.UpdateAccess(ctx, key, name, upd)
	return &Response{}, storeStatus(err)
}

// sigulKeyType is the type list-keys shows: keys with an OpenPGP
// certificate serve the OpenPGP operations ("gnupg"); the others are
// X.509 keys ("RSA" or "ECC").
func sigulKeyType(k store.Key) string {
	switch {
	case len(k.PGPCertificate) > 0:
		return "gnupg"
	case strings.HasPrefix(k.KeyType, "rsa"):
		return "RSA"
	}
	return "ECC"
}

func (h *Handlers) listKeys(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	keys, err := h.Store.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = fmt.Sprintf("%s (%s)", k.Name, sigulKeyType(k))
	}
	return list("num-keys", names), nil
}

func (h *Handlers) deleteKey(ctx context.Context, r *Request) (*Response, error) {
	key, err := h.adminAnd(ctx, r, "key")
	if err != nil {
		return nil, err
	}
	k, err := h.Store.GetKey(ctx, key)
	if err != nil {
		return nil, storeStatus(err)
	}
	// Destroy the token object first: a database row without its key is
	// visible and removable (key delete --forget-missing), a key without a
	// row is not.
	h.keysMu.Lock()
	delete(h.keys, k.ID)
	h.keysMu.Unlock()
	if err := h.Token.DeleteKey(k.ObjectID, ""); err != nil && !errors.Is(err, hsm.ErrKeyNotFound) {
		return nil, err
	}
	return &Response{}, storeStatus(h.Store.DeleteKey(ctx, key))
}

func (h *Handlers) modifyKey(ctx context.Context, r *Request) (*Response, error) {
	key, err := h.adminAnd(ctx, r, "key")
	if err != nil {
		return nil, err
	}
	var upd store.KeyUpdate
	if v, ok := r.Fields["new-name"]; ok {
		n := string(v)
		upd.Name = &n
	}
	_, err = h.Store.UpdateKey(ctx, key, upd)
	return &Response{}, storeStatus(err)
}

// keyAuth runs the KEY-USER (or KEY-ADMIN) class for the request's key.
func (h *Handlers) keyAuth(ctx context.Context, r *Request, keyAdmin bool) (KeyAccess, error) {
	key, err := str(r, "key")
	if err != nil {
		return KeyAccess{}, err
	}
	return h.Auth.KeyUser(ctx, r.User, key, r.Secrets["passphrase"], keyAdmin)
}

// adminOrKeyAuth runs "ADMIN or KEY-ADMIN" / "ADMIN or KEY-USER".
func (h *Handlers) adminOrKeyAuth(ctx context.Context, r *Request, keyAdmin bool) (KeyAccess, error) {
	key, err := str(r, "key")
	if err != nil {
		return KeyAccess{}, err
	}
	pw, hasPW := r.Secrets["password"]
	if !hasPW {
		pw = nil
	}
	pass, hasPass := r.Secrets["passphrase"]
	if !hasPass {
		pass = nil
	}
	return h.Auth.AdminOrKey(ctx, r.User, key, pw, pass, keyAdmin)
}

func (h *Handlers) listKeyUsers(ctx context.Context, r *Request) (*Response, error) {
	ka, err := h.adminOrKeyAuth(ctx, r, true)
	if err != nil {
		return nil, err
	}
	clear(ka.PIN)
	acc, err := h.Store.ListAccesses(ctx, ka.Key.Name)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(acc))
	for i, a := range acc {
		names[i] = a.UserName
	}
	return list("num-users", names), nil
}

// wrapFor wraps pin under passphrase for user's access to k.
func (h *Handlers) wrapFor(ctx context.Context, k store.Key, user string, pin, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: new-passphrase is missing", ErrDrop)
	}
	u, err := h.Store.GetUser(ctx, user)
	if err != nil {
		return nil, storeStatus(err)
	}
	kdf := h.KDF
	if kdf == (hsm.KDFParams{}) {
		kdf = hsm.DefaultKDF
	}
	return hsm.WrapPIN(pin, passphrase, AccessBinding(k, u.ID), kdf)
}

// grantKeyAccess needs no PIN held by the server: the granting key
// administrator's passphrase unwraps it, and it is wrapped again under the
// grantee's new passphrase.
func (h *Handlers) grantKeyAccess(ctx context.Context, r *Request) (*Response, error) {
	name, err := str(r, "name")
	if err != nil {
		return nil, err
	}
	ka, err := h.keyAuth(ctx, r, true)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	if _, err := h.Store.GetAccess(ctx, ka.Key.Name, name); err == nil {
		return nil, refuse(protocol.CodeAlreadyExists)
	}
	w, err := h.wrapFor(ctx, ka.Key, name, ka.PIN, r.Secrets["new-passphrase"])
	if err != nil {
		return nil, err
	}
	_, err = h.Store.Grant(ctx, ka.Key.Name, name, w, false)
	return &Response{}, storeStatus(err)
}

func (h *Handlers) revokeKeyAccess(ctx context.Context, r *Request) (*Response, error) {
	name, err := str(r, "name")
	if err != nil {
		return nil, err
	}
	ka, err := h.adminOrKeyAuth(ctx, r, true)
	if err != nil {
		return nil, err
	}
	clear(ka.PIN)
	if _, err := h.Store.GetUser(ctx, name); err != nil {
		return nil, storeStatus(err)
	}
	return &Response{}, storeStatus(h.Store.Revoke(ctx, ka.Key.Name, name))
}

func (h *Handlers) getPublicKey(ctx context.Context, r *Request) (*Response, error) {
	ka, err := h.adminOrKeyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	clear(ka.PIN)
	return h.publicKey(ka.Key)
}

func (h *Handlers) changePassphrase(ctx context.Context, r *Request) (*Response, error) {
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	w, err := h.wrapFor(ctx, ka.Key, r.User, ka.PIN, r.Secrets["new-passphrase"])
	if err != nil {
		return nil, err
	}
	_, err = h.Store.UpdateAccess(ctx, ka.Key.Name, r.User, store.AccessUpdate{WrappedPIN: w})
	return &Response{}, storeStatus(err)
}

// signer logs the token in with the unwrapped PIN (a constant-time
// comparison when it is already logged in with it) and returns the key,
// checked against the database.
func (h *Handlers) signer(ka KeyAccess) (*hsm.Key, error) {
	if err := h.Token.Login(ka.PIN); err != nil {
		return nil, err
	}
	h.keysMu.Lock()
	c, ok := h.keys[ka.Key.ID]
	h.keysMu.Unlock()
	if ok && bytes.Equal(c.pub, ka.Key.PublicKey) {
		return c.hk, nil
	}
	hk, err := tokenKey(h.Token, ka.Key)
	if err != nil {
		return nil, err
	}
	h.keysMu.Lock()
	if h.keys == nil {
		h.keys = map[int64]cachedKey{}
	}
	h.keys[ka.Key.ID] = cachedKey{hk: hk, pub: bytes.Clone(ka.Key.PublicKey)}
	h.keysMu.Unlock()
	return hk, nil
}

func (h *Handlers) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handlers) openpgpKey(ka KeyAccess) (*openpgp.Key, error) {
	if len(ka.Key.PGPCertificate) == 0 {
		return nil, refuse(protocol.CodeUnsupportedKeytype)
	}
	hk, err := h.signer(ka)
	if err != nil {
		return nil, err
	}
	return openpgp.NewKey(hk, ka.Key.PGPCreated)
}

func (h *Handlers) signData(ctx context.Context, r *Request) (*Response, error) {
	armor, err := optBool(r, "armor", false)
	if err != nil {
		return nil, err
	}
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	pk, err := h.openpgpKey(ka)
	if err != nil {
		return nil, err
	}
	sig, err := pk.SignDetached(r.Payload, false, h.now())
	if err != nil {
		return nil, err
	}
	if armor {
		if sig, err = openpgp.Armor(sig, "PGP SIGNATURE"); err != nil {
			return nil, err
		}
	}
	return withPayload(sig), nil
}

// errNoPIN answers new-key and import-key on a server started without the
// token PIN.
var errNoPIN = &refusal{status: protocol.CodeUnknownError,
	message: "this server holds no token PIN: run `signet-server key generate` or `key import` on the server host, or start the server with a PIN file"}

// NewKeyTypes maps Sigul's keytype to the key generated: "gnupg" keys get
// an OpenPGP identity; "RSA" and "ECC" keys are for X.509 and Authenticode.
var NewKeyTypes = map[string]hsm.KeyType{"gnupg": hsm.RSA4096, "RSA": hsm.RSA4096, "ECC": hsm.ECDSAP256}

func (h *Handlers) ceremony(r *Request) *Admin {
	return &Admin{Store: h.Store, Token: h.Token, TokenName: h.TokenName, PIN: h.PIN, KDF: h.KDF, Actor: r.User, Now: h.Now}
}

// checkNewKey runs the checks new-key and import-key share, in Sigul's
// order (§8.3): the name is free, the keytype known, the initial key
// administrator exists; then that the server holds a PIN.
func (h *Handlers) checkNewKey(ctx context.Context, r *Request, key string) (kt string, typ hsm.KeyType, owner string, err error) {
	kt, owner = "gnupg", r.User
	if v, ok := r.Fields["keytype"]; ok {
		kt = string(v)
	}
	if v, ok := r.Fields["initial-key-admin"]; ok {
		owner = string(v)
	}
	if _, err := h.Store.GetKey(ctx, key); err == nil {
		return "", 0, "", refuse(protocol.CodeAlreadyExists)
	}
	typ, ok := NewKeyTypes[kt]
	if !ok {
		return "", 0, "", refuse(protocol.CodeUnsupportedKeytype)
	}
	if _, err := h.Store.GetUser(ctx, owner); err != nil {
		return "", 0, "", storeStatus(err)
	}
	if len(h.PIN) == 0 {
		return "", 0, "", errNoPIN
	}
	return kt, typ, owner, nil
}

func (h *Handlers) newKey(ctx context.Context, r *Request) (*Response, error) {
	key, err := h.adminAnd(ctx, r, "key")
	if err != nil {
		return nil, err
	}
	pass := r.Secrets["passphrase"]
	if len(pass) == 0 {
		return nil, fmt.Errorf("%w: passphrase is missing", ErrDrop)
	}
	kt, typ, owner, err := h.checkNewKey(ctx, r, key)
	if err != nil {
		return nil, err
	}
	req := NewKeyRequest{Name: key, Type: typ, Owner: owner, OwnerPassphrase: pass}
	if kt == "gnupg" {
		uid := string(r.Fields["name-real"])
		if c := r.Fields["name-comment"]; len(c) > 0 {
			uid += " (" + string(c) + ")"
		}
		if e := r.Fields["name-email"]; len(e) > 0 {
			uid += " <" + string(e) + ">"
		}
		if strings.TrimSpace(uid) == "" {
			return nil, &refusal{status: protocol.CodeUnknownError, message: "a gnupg key needs name-real"}
		}
		req.UserIDs = []string{uid}
	}
	k, err := h.ceremony(r).GenerateKey(ctx, req)
	if err != nil {
		return nil, storeStatus(err)
	}
	return h.publicKey(k)
}

// publicKey is the reply payload of new-key and get-public-key.
func (h *Handlers) publicKey(k store.Key) (*Response, error) {
	if len(k.PGPCertificate) > 0 {
		armored, err := openpgp.Armor(k.PGPCertificate, "PGP PUBLIC KEY BLOCK")
		if err != nil {
			return nil, err
		}
		return withPayload(armored), nil
	}
	return withPayload(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.PublicKey})), nil
}

func (h *Handlers) importKey(ctx context.Context, r *Request) (*Response, error) {
	key, err := h.adminAnd(ctx, r, "key")
	if err != nil {
		return nil, err
	}
	pass, newPass := r.Secrets["passphrase"], r.Secrets["new-passphrase"]
	if _, ok := r.Secrets["passphrase"]; !ok || len(newPass) == 0 {
		return nil, fmt.Errorf("%w: passphrase or new-passphrase is missing", ErrDrop)
	}
	kt, _, owner, err := h.checkNewKey(ctx, r, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r.Payload, 1<<20+1))
	if err != nil {
		return nil, err
	}
	defer clear(data)
	if kt != "gnupg" {
		return nil, &refusal{status: protocol.CodeInvalidImport, message: "importing encrypted PKCS#8 keys over the network is not supported: use `signet-server key import` on the server host"}
	}
	in, err := ParseImport(data, func() ([]byte, error) { return bytes.Clone(pass), nil })
	switch {
	case errors.Is(err, openpgp.ErrBadPassphrase):
		return nil, refuse(protocol.CodeImportPassphraseError)
	case err != nil:
		return nil, &refusal{status: protocol.CodeInvalidImport, message: err.Error()}
	}
	_, err = h.ceremony(r).ImportKey(ctx, NewKeyRequest{Name: key, Owner: owner, OwnerPassphrase: newPass}, in)
	return &Response{}, storeStatus(err)
}

func (h *Handlers) signText(ctx context.Context, r *Request) (*Response, error) {
	ka, err := h.keyAuth(ctx, r, false)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	pk, err := h.openpgpKey(ka)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := pk.ClearSign(&out, r.Payload, h.now()); err != nil {
		if errors.Is(err, openpgp.ErrNotCleartext) {
			return nil, &refusal{status: protocol.CodeUnknownError, message: err.Error()}
		}
		return nil, err
	}
	return withPayload(out.Bytes()), nil
}

func (h *Handlers) changeKeyExpiration(ctx context.Context, r *Request) (*Response, error) {
	var expires time.Time
	if v, ok := r.Fields["expire-date"]; ok {
		d, err := time.Parse(time.DateOnly, string(v))
		if err != nil {
			return nil, fmt.Errorf("%w: expire-date %q is not YYYY-MM-DD", ErrDrop, v)
		}
		expires = d
	}
	ka, err := h.keyAuth(ctx, r, true)
	if err != nil {
		return nil, err
	}
	defer clear(ka.PIN)
	if len(ka.Key.PGPCertificate) == 0 {
		return nil, refuse(protocol.CodeUnsupportedKeytype)
	}
	if _, ok := r.Fields["subkey"]; ok {
		return nil, &refusal{status: protocol.CodeUnknownError, message: "signet keys have no subkeys"}
	}
	if err := h.Token.Login(ka.PIN); err != nil {
		return nil, err
	}
	return &Response{}, h.ceremony(r).SetExpiration(ctx, ka.Key.Name, expires)
}
