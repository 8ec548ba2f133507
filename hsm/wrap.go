package hsm

// Wrapped key backup: keys generated with GenerateRequest.Backup leave the
// token only wrapped under a trusted AES-256 wrap key that every token of
// a deployment shares. Facts this relies on (measured on SoftHSM2 2.6.1,
// see ../shared/docs/PKCS11.md "Wrapping keys between tokens"):
//
//   - C_WrapKey needs CKA_EXTRACTABLE on the wrapped key; with
//     CKA_WRAP_WITH_TRUSTED the wrapping key must have CKA_TRUSTED, and
//     only the security officer may set CKA_TRUSTED. An SO session cannot
//     create private objects (CKR_USER_NOT_LOGGED_IN), so on SoftHSM2 the
//     wrap key is a public object.
//   - A public unwrapping key would let a session without any login unwrap
//     a backup as a non-sensitive session object and read the private key.
//     The wrap key therefore carries CKA_UNWRAP_TEMPLATE {CKA_PRIVATE,
//     CKA_SENSITIVE}: SoftHSM2 enforces it (CKR_TEMPLATE_INCONSISTENT for
//     any other template), so an unwrapped key needs the user PIN and never
//     shows its value. CKA_ENCRYPT and CKA_DECRYPT are false (C_Decrypt
//     with the wrap mechanism would otherwise open a backup), and the
//     object is neither modifiable nor copyable.
//   - The backup file's MAC is HMAC-SHA256 under a key derived from the
//     wrap key (HKDF, its own label), stored beside it as a private,
//     sensitive object: one secret, two separated uses.
//   - Ed25519 keys cannot be wrapped by SoftHSM2 2.6.1 (CKR_KEY_NOT_WRAPPABLE).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// PKCS#11 values for wrapping that miekg/pkcs11 v1.1 lacks.
const (
	// CKMAESKeyWrapPad is CKM_AES_KEY_WRAP_PAD; SoftHSM2 2.6.1 implements
	// RFC 5649 under it (0x210B, the standard's CKM_AES_KEY_WRAP_KWP, is
	// CKR_MECHANISM_INVALID there).
	CKMAESKeyWrapPad = 0x210A
	// ckmAESKeyWrapKWP is CKM_AES_KEY_WRAP_KWP (RFC 5649 by the standard).
	ckmAESKeyWrapKWP = 0x210B
	// ckmYubicoAESCCMWrap is YubiHSM 2's wrap mechanism.
	ckmYubicoAESCCMWrap = 0xd9554204

	ckkYubicoAES256CCMWrap = 0xd955422a
	ckkSHA256HMAC          = 0x2B
	ckaWrapWithTrusted     = 0x210
	ckaUnwrapTemplate      = 0x40000212
)

// wrapKeySize is the size of a wrap key: AES-256.
const wrapKeySize = 32

var (
	// ErrNoWrapKey: the token holds no wrap key.
	ErrNoWrapKey = errors.New("the token holds no wrap key")
	// ErrNotBackupable: the key was generated without backup and can never
	// leave the token.
	ErrNotBackupable = errors.New("the key was generated without --backup: it is not extractable, and that cannot be changed")
	// ErrBadMAC: a backup's MAC does not verify under the token's wrap key.
	ErrBadMAC = errors.New("the MAC does not verify")
)

// WrapProfile is how one kind of token wraps keys.
type WrapProfile struct {
	// Mechanism is given to C_WrapKey and C_UnwrapKey.
	Mechanism uint
	// WrapKeyType is the wrap key's CKA_KEY_TYPE.
	WrapKeyType uint
	// TrustedBySO: CKA_TRUSTED can only be set by the security officer, so
	// the wrap key is created in an SO session (SoftHSM2).
	TrustedBySO bool
	// MACKeyType is the CKA_KEY_TYPE of the HMAC-SHA256 key.
	MACKeyType uint
	// NoEd25519 names why Ed25519 keys cannot be backed up here, or is "".
	NoEd25519 string
}

// DefaultWrapProfile is the profile for a token, chosen by its
// manufacturer: SoftHSM2 (AES key wrap with padding, 0x210A) or YubiHSM 2
// (CKM_YUBICO_AES_CCM_WRAP). Other tokens get the standard RFC 5649
// mechanism; configure another one if the token wants it.
func DefaultWrapProfile(ti TokenInfo) WrapProfile {
	switch {
	case strings.Contains(ti.Manufacturer, "SoftHSM"):
		return WrapProfile{Mechanism: CKMAESKeyWrapPad, WrapKeyType: pkcs11.CKK_AES, TrustedBySO: true,
			MACKeyType: pkcs11.CKK_GENERIC_SECRET,
			NoEd25519:  "SoftHSM2 2.6 cannot wrap Ed25519 keys (CKR_KEY_NOT_WRAPPABLE)"}
	case strings.Contains(ti.Manufacturer, "Yubico"):
		// From Yubico's PKCS#11 documentation; not tried on a device here.
		return WrapProfile{Mechanism: ckmYubicoAESCCMWrap, WrapKeyType: ckkYubicoAES256CCMWrap,
			MACKeyType: ckkSHA256HMAC}
	}
	return WrapProfile{Mechanism: ckmAESKeyWrapKWP, WrapKeyType: pkcs11.CKK_AES, MACKeyType: pkcs11.CKK_GENERIC_SECRET}
}

var wrapMechanismNames = map[string]uint{
	"aes-key-wrap-pad":    CKMAESKeyWrapPad,
	"aes-key-wrap-kwp":    ckmAESKeyWrapKWP,
	"yubico-aes-ccm-wrap": ckmYubicoAESCCMWrap,
}

// ParseWrapMechanism reads a configured wrap mechanism: one of
// aes-key-wrap-pad (0x210A), aes-key-wrap-kwp (0x210B),
// yubico-aes-ccm-wrap (0xd9554204), or a number in hex (0x...).
func ParseWrapMechanism(s string) (uint, error) {
	if m, ok := wrapMechanismNames[strings.ToLower(s)]; ok {
		return m, nil
	}
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		if n, err := strconv.ParseUint(h, 16, 32); err == nil && n != 0 {
			return uint(n), nil
		}
	}
	return 0, fmt.Errorf("hsm: wrap mechanism %q: want aes-key-wrap-pad, aes-key-wrap-kwp, yubico-aes-ccm-wrap or a hex number (0x...)", s)
}

// MechanismName names a wrap mechanism as ParseWrapMechanism reads it.
func MechanismName(m uint) string {
	for n, v := range wrapMechanismNames {
		if v == m {
			return n
		}
	}
	return fmt.Sprintf("0x%x", m)
}

// WrapKeyID is the public identifier of a wrap key: 8 bytes derived from
// it with HKDF-SHA256, in hex. Tokens holding the same wrap key report the
// same id; it tells nothing about the key.
func WrapKeyID(key []byte) (string, error) {
	id, err := hkdf.Key(sha256.New, key, nil, "signet wrap key id v1", 8)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(id), nil
}

func macKey(key []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, key, nil, "signet key backup MAC key v1", 32)
}

func wrapKeyLabel(id string) string { return "signet-wrap-" + id }
func macKeyLabel(id string) string  { return "signet-backup-mac-" + id }

// backupTemplate turns a private key template into one that may leave the
// token, wrapped under a trusted key only.
func backupTemplate(priv []*pkcs11.Attribute) []*pkcs11.Attribute {
	out := make([]*pkcs11.Attribute, 0, len(priv)+1)
	for _, a := range priv {
		if a.Type == pkcs11.CKA_EXTRACTABLE {
			a = pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true)
		}
		out = append(out, a)
	}
	return append(out, pkcs11.NewAttribute(ckaWrapWithTrusted, true))
}

// CheckBackupType tells whether keys of type typ can be generated for
// backup on this token: it refuses Ed25519 where the token cannot wrap it.
func (t *Token) CheckBackupType(p WrapProfile, typ KeyType) error {
	if typ == Ed25519 && p.NoEd25519 != "" {
		return fmt.Errorf("hsm: an Ed25519 key cannot be backed up on token %q: %s: %w", t.name(), p.NoEd25519, ErrUnsupported)
	}
	return nil
}

// BackupAttributes are the attributes that decide whether a key can be
// backed up.
type BackupAttributes struct {
	Sensitive       bool // CKA_SENSITIVE
	Extractable     bool // CKA_EXTRACTABLE
	WrapWithTrusted bool // CKA_WRAP_WITH_TRUSTED
}

// Backupable reports whether the key was generated for backup: sensitive,
// extractable, and only under a trusted wrap key.
func (a BackupAttributes) Backupable() bool {
	return a.Sensitive && a.Extractable && a.WrapWithTrusted
}

// BackupAttributes reads the key's backup attributes from the token.
func (k *Key) BackupAttributes() (BackupAttributes, error) {
	v, err := k.boolAttributes(pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, ckaWrapWithTrusted)
	if err != nil {
		return BackupAttributes{}, err
	}
	return BackupAttributes{v[0], v[1], v[2]}, nil
}

// WrapKeyID returns the id of the wrap key the token holds, or
// ErrNoWrapKey.
func (t *Token) WrapKeyID() (string, error) {
	var ids []string
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) error {
		ids = ids[:0]
		hs, err := findObjects(c, sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		}, 0)
		if err != nil {
			return err
		}
		for _, h := range hs {
			a, err := c.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
			if err != nil {
				return err
			}
			if id, ok := strings.CutPrefix(string(a[0].Value), "signet-wrap-"); ok {
				ids = append(ids, id)
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hsm: looking for the wrap key in token %q: %w", t.name(), err)
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("hsm: token %q: %w (import it with 'token wrap-key import')", t.name(), ErrNoWrapKey)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("hsm: token %q holds %d wrap keys (%s); signet expects one", t.name(), len(ids), strings.Join(ids, ", "))
}

// findSecret returns the handle of the one secret key labelled label.
func findSecret(c *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) (pkcs11.ObjectHandle, error) {
	hs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}, 2)
	if err != nil {
		return 0, err
	}
	if len(hs) != 1 {
		return 0, fmt.Errorf("%d secret keys labelled %q (want 1): %w", len(hs), label, ErrNoWrapKey)
	}
	return hs[0], nil
}

// Wrap returns the private key wrapped under the token's wrap key wrapID
// with the profile's mechanism (C_WrapKey). A key generated without
// backup gives ErrNotBackupable.
func (k *Key) Wrap(p WrapProfile, wrapID string) ([]byte, error) {
	ba, err := k.BackupAttributes()
	if err != nil {
		return nil, err
	}
	if !ba.Backupable() {
		return nil, fmt.Errorf("hsm: key %q: %w", k.label, ErrNotBackupable)
	}
	if err := k.t.CheckBackupType(p, k.typ); err != nil {
		return nil, err
	}
	var out []byte
	err = k.t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		h, err := k.handle(c, sh, gen)
		if err != nil {
			return err
		}
		wh, err := findSecret(c, sh, wrapKeyLabel(wrapID))
		if err != nil {
			return err
		}
		out, err = c.WrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(p.Mechanism, nil)}, wh, h)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: wrapping key %q under wrap key %s with %s: %w", k.label, wrapID, MechanismName(p.Mechanism), err)
	}
	return out, nil
}

// MAC returns HMAC-SHA256 of data under the backup MAC key that belongs to
// wrap key wrapID.
func (t *Token) MAC(wrapID string, data []byte) ([]byte, error) {
	var mac []byte
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) error {
		h, err := findSecret(c, sh, macKeyLabel(wrapID))
		if err != nil {
			return err
		}
		if err := c.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, h); err != nil {
			return err
		}
		mac, err = c.Sign(sh, data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: MAC under wrap key %s: %w", wrapID, err)
	}
	return mac, nil
}

// VerifyMAC checks a MAC made by MAC; a wrong one gives ErrBadMAC.
func (t *Token) VerifyMAC(wrapID string, data, mac []byte) error {
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) error {
		h, err := findSecret(c, sh, macKeyLabel(wrapID))
		if err != nil {
			return err
		}
		if err := c.VerifyInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, h); err != nil {
			return err
		}
		return c.Verify(sh, data, mac)
	})
	if isCode(err, pkcs11.CKR_SIGNATURE_INVALID) || isCode(err, pkcs11.CKR_SIGNATURE_LEN_RANGE) {
		return ErrBadMAC
	}
	if err != nil {
		return fmt.Errorf("hsm: checking a MAC under wrap key %s: %w", wrapID, err)
	}
	return nil
}

// UnwrapRequest asks the token to take in a wrapped private key.
type UnwrapRequest struct {
	WrapKeyID string
	Wrapped   []byte
	// Public is the key's public half: it becomes the public key object
	// (the wrapped key does not carry it) and is checked against the
	// unwrapped private key by a test signature.
	Public crypto.PublicKey
	Label  string
	ID     []byte
}

// Unwrap recreates a wrapped private key in the token with the attributes
// of a key generated for backup (sensitive, extractable only under a
// trusted wrap key), and its public key object with the same id. If the
// unwrapped key does not sign for Public, both objects are destroyed.
func (t *Token) Unwrap(p WrapProfile, req UnwrapRequest) (*Key, error) {
	typ, err := KeyTypeOf(req.Public)
	if err != nil {
		return nil, err
	}
	if err := t.CheckBackupType(p, typ); err != nil {
		return nil, err
	}
	pubAttrs, err := publicMaterial(req.Public)
	if err != nil {
		return nil, err
	}
	var key *Key
	err = t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		id, err := t.newID(c, sh, req.Label, req.ID)
		if err != nil {
			return err
		}
		wh, err := findSecret(c, sh, wrapKeyLabel(req.WrapKeyID))
		if err != nil {
			return err
		}
		pubT, privT := commonTemplates(typ, id, req.Label)
		privH, err := c.UnwrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(p.Mechanism, nil)}, wh, req.Wrapped, backupTemplate(privT))
		if err != nil {
			return fmt.Errorf("unwrapping %q with %s: %w", req.Label, MechanismName(p.Mechanism), err)
		}
		if _, err := c.CreateObject(sh, append(pubT, pubAttrs...)); err != nil {
			c.DestroyObject(sh, privH)
			return fmt.Errorf("storing the public half of %q: %w", req.Label, err)
		}
		key = &Key{t: t, id: id, label: req.Label, typ: typ, pub: req.Public}
		key.h.Store(&objectRef{h: privH, gen: gen})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: %w", err)
	}
	if err := CheckPair(key); err != nil {
		if derr := t.DeleteKey(key.id, ""); derr != nil {
			err = fmt.Errorf("%w; removing it from the token again also failed: %v", err, derr)
		}
		return nil, fmt.Errorf("hsm: the unwrapped key %q does not match its public key: %w", req.Label, err)
	}
	return key, nil
}

// CheckPair signs a fixed message with k in the token and verifies the
// signature with k's public key.
func CheckPair(k *Key) error {
	msg := []byte("signet key pair check")
	d := sha256.Sum256(msg)
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		sig, err := k.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			return err
		}
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
	case *ecdsa.PublicKey:
		sig, err := k.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(pub, d[:], sig) {
			return errors.New("the ECDSA signature does not verify")
		}
	case ed25519.PublicKey:
		sig, err := k.Sign(nil, msg, crypto.Hash(0))
		if err != nil {
			return err
		}
		if !ed25519.Verify(pub, msg, sig) {
			return errors.New("the Ed25519 signature does not verify")
		}
	default:
		return fmt.Errorf("public key of type %T: %w", pub, ErrUnsupported)
	}
	return nil
}

// publicMaterial returns the type-specific attributes of a public key
// object.
func publicMaterial(pub crypto.PublicKey) ([]*pkcs11.Attribute, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, p.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(p.E)).Bytes()),
		}, nil
	case *ecdsa.PublicKey:
		typ, err := KeyTypeOf(p)
		if err != nil {
			return nil, err
		}
		point, err := p.Bytes()
		if err != nil {
			return nil, fmt.Errorf("hsm: ECDSA public key: %w", err)
		}
		octets, _ := asn1.Marshal(point)
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, typ.ecParams()),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, octets),
		}, nil
	case ed25519.PublicKey:
		octets, _ := asn1.Marshal([]byte(p))
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, Ed25519.ecParams()),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, octets),
		}, nil
	}
	return nil, fmt.Errorf("hsm: public key of type %T: %w", pub, ErrUnsupported)
}

// InstallWrapKey stores a wrap key in the token: the key itself as a
// trusted wrap/unwrap key, and the backup MAC key derived from it, and
// returns its id. Where CKA_TRUSTED needs the security officer
// (p.TrustedBySO), the wrap key is created in an SO session and the MAC
// key in a user session, one after the other, so no other session of this
// process may be logged in to the token meanwhile. A token that already
// holds a wrap key is refused. The caller wipes key; the attribute buffers
// made here are wiped before returning.
func InstallWrapKey(cfg Config, p WrapProfile, soPIN, userPIN, key []byte) (string, error) {
	if len(key) != wrapKeySize {
		return "", fmt.Errorf("hsm: a wrap key is %d bytes, not %d", wrapKeySize, len(key))
	}
	id, err := WrapKeyID(key)
	if err != nil {
		return "", err
	}
	mk, err := macKey(key)
	if err != nil {
		return "", err
	}
	defer clear(mk)
	m, err := loadModule(cfg.Module)
	if err != nil {
		return "", err
	}
	defer m.release()
	slot, _, err := m.findSlot(cfg.TokenLabel, cfg.TokenSerial)
	if err != nil {
		return "", err
	}
	name := cfg.TokenLabel
	if cfg.TokenSerial != "" {
		name = "serial " + cfg.TokenSerial
	}
	c := m.ctx
	sh, err := c.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return "", fmt.Errorf("hsm: opening a session on token %q: %w", name, err)
	}
	defer c.CloseSession(sh)
	login := func(user uint, pin []byte) error {
		if err := c.Login(sh, user, string(pin)); err != nil {
			who := "user"
			if user == pkcs11.CKU_SO {
				who = "security officer"
			}
			return fmt.Errorf("hsm: %s login to token %q: %w", who, name, loginError(err))
		}
		return nil
	}

	// As the user (which checks the PIN): refuse a token that already has
	// a wrap key.
	if err := login(pkcs11.CKU_USER, userPIN); err != nil {
		return "", err
	}
	hs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
	}, 0)
	if err == nil {
		for _, h := range hs {
			a, aerr := c.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
			if aerr != nil {
				err = aerr
				break
			}
			if have, ok := strings.CutPrefix(string(a[0].Value), "signet-wrap-"); ok {
				if have == id {
					err = fmt.Errorf("token %q already holds wrap key %s", name, id)
				} else {
					err = fmt.Errorf("token %q already holds another wrap key, %s; signet expects one per token", name, have)
				}
				break
			}
		}
	}
	c.Logout(sh)
	if err != nil {
		return "", fmt.Errorf("hsm: %w", err)
	}

	macT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, p.MACKeyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, macKeyLabel(id)),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, mk),
	}
	defer clear(macT[len(macT)-1].Value)
	var pin runtime.Pinner
	defer pin.Unpin()
	wrapT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, p.WrapKeyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, !p.TrustedBySO),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, wrapKeyLabel(id)),
		templateAttribute(ckaUnwrapTemplate, &pin,
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true)),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, append([]byte(nil), key...)),
	}
	defer clear(wrapT[len(wrapT)-1].Value)

	// The wrap key is trusted, so where the token follows the standard on
	// CKA_TRUSTED only the security officer may create it. The SO PIN is
	// checked before anything is created.
	if p.TrustedBySO {
		if err := login(pkcs11.CKU_SO, soPIN); err != nil {
			return "", err
		}
		_, err := c.CreateObject(sh, wrapT)
		c.Logout(sh)
		if err != nil {
			return "", fmt.Errorf("hsm: storing the wrap key in token %q as the security officer: %w", name, err)
		}
	}
	// The MAC key is a private object: the user's.
	err = login(pkcs11.CKU_USER, userPIN)
	if err == nil {
		if !p.TrustedBySO {
			if _, err = c.CreateObject(sh, wrapT); err != nil {
				err = fmt.Errorf("hsm: storing the wrap key in token %q: %w", name, err)
			}
		}
		if err == nil {
			if _, err = c.CreateObject(sh, macT); err != nil {
				err = fmt.Errorf("hsm: storing the backup MAC key in token %q: %w", name, err)
				if !p.TrustedBySO {
					destroySecret(c, sh, wrapKeyLabel(id))
				}
			}
		}
		c.Logout(sh)
	}
	if err != nil && p.TrustedBySO {
		// Take the wrap key out again, so the token is as it was.
		if login(pkcs11.CKU_SO, soPIN) == nil {
			destroySecret(c, sh, wrapKeyLabel(id))
			c.Logout(sh)
		}
	}
	if err != nil {
		return "", err
	}
	return id, nil
}

// destroySecret destroys the secret keys labelled label (a rollback).
func destroySecret(c *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) {
	hs, _ := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}, 0)
	for _, h := range hs {
		c.DestroyObject(sh, h)
	}
}

// templateAttribute builds an attribute whose value is an array of
// attributes (CKA_UNWRAP_TEMPLATE), which miekg/pkcs11 cannot marshal: the
// value is the CK_ATTRIBUTE array itself, pointing at pinned copies of the
// inner values, which stay pinned until p is unpinned.
func templateAttribute(typ uint, p *runtime.Pinner, attrs ...*pkcs11.Attribute) *pkcs11.Attribute {
	const ulong = unsafe.Sizeof(uint(0))
	const size = 3 * ulong // CK_ATTRIBUTE: type, pValue, ulValueLen
	buf := make([]byte, int(size)*len(attrs))
	for i, a := range attrs {
		v := append([]byte(nil), a.Value...)
		var ptr uintptr
		if len(v) > 0 {
			p.Pin(&v[0])
			ptr = uintptr(unsafe.Pointer(&v[0]))
		}
		o := i * int(size)
		putUlong(buf[o:], uint64(a.Type))
		putUlong(buf[o+int(ulong):], uint64(ptr))
		putUlong(buf[o+2*int(ulong):], uint64(len(v)))
	}
	return &pkcs11.Attribute{Type: typ, Value: buf}
}

func putUlong(b []byte, v uint64) {
	if unsafe.Sizeof(uint(0)) == 8 {
		binary.NativeEndian.PutUint64(b, v)
	} else {
		binary.NativeEndian.PutUint32(b, uint32(v))
	}
}
