// This file holds the Handlers type: the table of operations served, the
// dispatch of one request (Serve) and its audit record (finish), and the
// authentication helpers the handlers share.

package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/protocol"
	"github.com/signet-project/signet/server/store"
)

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
	"list-binding-methods":  (*Handlers).listBindingMethods,
}

// Serve runs one request and returns its reply. It returns ErrDrop when
// the request must get no reply. Every outcome is audited.
func (h *Handlers) Serve(ctx context.Context, r *Request) (resp *Response, err error) {
	start := time.Now()
	end := h.Metrics.begin()
	defer func() {
		// A sign-rpms batch stays in flight until its sub-phase ends.
		if err == nil && resp != nil && resp.Batch != nil {
			resp.Batch = &countedBatch{Batch: resp.Batch, end: end}
		} else {
			end()
		}
	}()
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
	// A change the handler commits carries the request's record in its
	// transaction (no record, no effect); finish then adds none.
	ctx = store.WithAudit(ctx, func() store.AuditRecord { return h.auditRecord(r, nil, "ok") })
	out, ferr := fn(h, ctx, r)
	return h.finish(ctx, r, out, ferr)
}

// auditRecord is the audit record of request r answered with resp.
func (h *Handlers) auditRecord(r *Request, resp *Response, result string) store.AuditRecord {
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
	} else if r.auditNote != "" {
		detail += " " + r.auditNote
	}
	return store.AuditRecord{Actor: r.User, Operation: r.Op, KeyName: key, Detail: detail, Digest: digest, Result: result}
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
	var aerr error
	if _, written := store.AuditWritten(ctx); !written {
		_, aerr = h.Store.AppendAudit(ctx, h.auditRecord(r, resp, result))
	}
	if aerr != nil {
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

// login logs the token in with the PIN unwrapped from ka's access row. A
// PIN the token does not take (a row wrapped before the token's PIN was
// changed) fails the request as an authentication failure, and the
// operator is told which access to grant again; the token is not asked
// again with it (hsm.ErrOtherPIN).
func (h *Handlers) login(ka KeyAccess) error {
	err := h.Token.Login(ka.PIN)
	if errors.Is(err, hsm.ErrBadPIN) {
		h.log().Warn("an access row unwraps a PIN the token refuses: grant the access again, or run signet-server token change-pin",
			"key", ka.Key.Name, "user", ka.Access.UserName, "err", err)
		return ErrAuthFailed
	}
	return err
}

// signer logs the token in with the unwrapped PIN (a constant-time
// comparison when it is already logged in with it) and returns the key,
// checked against the database.
func (h *Handlers) signer(ka KeyAccess) (*hsm.Key, error) {
	if err := h.login(ka); err != nil {
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
