// Package hsm keeps signet's private keys inside a PKCS#11 token.
//
// A Token is one token of one PKCS#11 module, chosen by label or serial
// number (slot numbers change between restarts on SoftHSM2 and YubiHSM 2, so
// they are never used to name a token). A Token holds a capped pool of
// sessions, logs in once, and hands out keys as crypto.Signer values that are
// safe for concurrent use. When the token or its connector goes away
// (CKR_SESSION_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN, CKR_TOKEN_NOT_PRESENT,
// CKR_DEVICE_ERROR, ...), the next operation reopens sessions and logs in
// again instead of failing forever.
//
// Keys are generated in the token, or imported into it, as sensitive,
// non-extractable objects. RSA and ECDSA keys use the standard mechanisms;
// Ed25519 uses CKK_EC_EDWARDS and CKM_EDDSA (PKCS#11 3.0), which miekg/pkcs11
// does not name, so the constants are defined here.
//
// Keys generated for backup (GenerateRequest.Backup) may leave the token,
// but only wrapped under a trusted wrap key that every token of a
// deployment shares (Key.Wrap, Token.Unwrap, InstallWrapKey); the wrap key
// is split among custodians with Shamir's scheme (SplitWrapKey).
//
// The package also wraps token PINs under users' passphrases (see WrapPIN).
package hsm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS#11 3.0 names that miekg/pkcs11 v1.1 lacks.
const (
	ckkECEdwards           = 0x40
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEDDSA               = 0x1057
)

// module is one loaded PKCS#11 library. A library may be initialised only
// once per process, so every Token on the same path shares one module.
type module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int
	// mu serialises re-initialisation after CKR_CRYPTOKI_NOT_INITIALIZED.
	mu sync.Mutex
}

var (
	modulesMu sync.Mutex
	modules   = map[string]*module{}
)

// loadModule loads and initialises the PKCS#11 library at path, or returns
// the one already loaded.
func loadModule(path string) (*module, error) {
	if path == "" {
		return nil, errors.New("hsm: no PKCS#11 module path configured")
	}
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m, ok := modules[path]; ok {
		m.refs++
		return m, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("hsm: PKCS#11 module %s: %w", path, err)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("hsm: %s could not be loaded as a PKCS#11 module (wrong architecture, missing dependency, or not a PKCS#11 library)", path)
	}
	if err := ctx.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("hsm: initialising %s: %w", path, err)
	}
	m := &module{path: path, ctx: ctx, refs: 1}
	modules[path] = m
	return m, nil
}

// release drops one reference. The library stays loaded and initialised
// for the life of the process even without references: C_Finalize followed
// by a new C_Initialize leaves SoftHSM2 2.6 unable to generate EC keys
// (CKR_GENERAL_ERROR), and reloading costs more than keeping it.
func (m *module) release() {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	m.refs--
}

// reinitialize initialises the library again after it reported
// CKR_CRYPTOKI_NOT_INITIALIZED (someone called C_Finalize behind our back).
func (m *module) reinitialize() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.ctx.Initialize()
	if err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return fmt.Errorf("hsm: re-initialising %s: %w", m.path, err)
	}
	return nil
}

// TokenInfo describes one token as its module reports it.
type TokenInfo struct {
	Module       string
	Slot         uint // informational only; slots are never used to select a token
	Label        string
	Serial       string
	Manufacturer string
	Model        string
	Initialized  bool
	// MaxSessions is the token's own limit; 0 means the module reports none
	// (YubiHSM 2 reports "unlimited" but allows 16: cap it in Config).
	MaxSessions uint
	Sessions    uint
}

func (ti TokenInfo) String() string {
	return fmt.Sprintf("label %q serial %q (%s %s)", ti.Label, ti.Serial, ti.Manufacturer, ti.Model)
}

func tokenInfo(m *module, slot uint, ti pkcs11.TokenInfo) TokenInfo {
	maxS := ti.MaxSessionCount
	// CK_UNAVAILABLE_INFORMATION and CK_EFFECTIVELY_INFINITE mean "no limit given".
	if maxS == ^uint(0) || maxS == 0 {
		maxS = 0
	}
	sessions := ti.SessionCount
	if sessions == ^uint(0) {
		sessions = 0
	}
	return TokenInfo{
		Module:       m.path,
		Slot:         slot,
		Label:        strings.TrimRight(ti.Label, " \x00"),
		Serial:       strings.TrimRight(ti.SerialNumber, " \x00"),
		Manufacturer: strings.TrimRight(ti.ManufacturerID, " \x00"),
		Model:        strings.TrimRight(ti.Model, " \x00"),
		Initialized:  ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0,
		MaxSessions:  maxS,
		Sessions:     sessions,
	}
}

// ListTokens lists the tokens present in the module at path, initialised or
// not.
func ListTokens(path string) ([]TokenInfo, error) {
	m, err := loadModule(path)
	if err != nil {
		return nil, err
	}
	defer m.release()
	return m.tokens()
}

func (m *module) tokens() ([]TokenInfo, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("hsm: listing slots of %s: %w", m.path, err)
	}
	var out []TokenInfo
	for _, s := range slots {
		ti, err := m.ctx.GetTokenInfo(s)
		if err != nil {
			continue // a token removed between the two calls
		}
		out = append(out, tokenInfo(m, s, ti))
	}
	return out, nil
}

// findSlot returns the slot holding the initialised token with the given
// label or serial. Exactly one of label and serial is used (serial wins).
func (m *module) findSlot(label, serial string) (uint, TokenInfo, error) {
	if label == "" && serial == "" {
		return 0, TokenInfo{}, errors.New("hsm: no token label or serial configured (slot numbers are never used: they change between restarts)")
	}
	all, err := m.tokens()
	if err != nil {
		return 0, TokenInfo{}, err
	}
	var names []string
	for _, ti := range all {
		if !ti.Initialized {
			continue
		}
		names = append(names, fmt.Sprintf("%q (serial %s)", ti.Label, ti.Serial))
		if (serial != "" && ti.Serial == serial) || (serial == "" && ti.Label == label) {
			return ti.Slot, ti, nil
		}
	}
	want := fmt.Sprintf("label %q", label)
	if serial != "" {
		want = fmt.Sprintf("serial %q", serial)
	}
	have := "none"
	if len(names) > 0 {
		have = strings.Join(names, ", ")
	}
	return 0, TokenInfo{}, fmt.Errorf("hsm: %s has no initialised token with %s; tokens present: %s: %w", m.path, want, have, ErrTokenNotFound)
}

// InitToken initialises a free (uninitialised) slot of the module at path as
// a new token with the given label, security-officer PIN and user PIN, and
// returns its description. It refuses a label that is already in use.
func InitToken(path, label string, soPIN, userPIN []byte) (TokenInfo, error) {
	if label == "" || len(label) > 32 {
		return TokenInfo{}, fmt.Errorf("hsm: token label %q must be 1 to 32 bytes", label)
	}
	m, err := loadModule(path)
	if err != nil {
		return TokenInfo{}, err
	}
	defer m.release()
	all, err := m.tokens()
	if err != nil {
		return TokenInfo{}, err
	}
	free := -1
	for _, ti := range all {
		if ti.Initialized && ti.Label == label {
			return TokenInfo{}, fmt.Errorf("hsm: a token labelled %q already exists in %s", label, path)
		}
		if !ti.Initialized && free < 0 {
			free = int(ti.Slot)
		}
	}
	if free < 0 {
		return TokenInfo{}, fmt.Errorf("hsm: %s has no free slot to initialise a token in", path)
	}
	slot := uint(free)
	if err := m.ctx.InitToken(slot, string(soPIN), label); err != nil {
		return TokenInfo{}, fmt.Errorf("hsm: initialising token %q: %w", label, err)
	}
	// The token may move to another slot once initialised (SoftHSM2 does).
	slot, _, err = m.findSlot(label, "")
	if err != nil {
		return TokenInfo{}, err
	}
	sh, err := m.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("hsm: opening a session on new token %q: %w", label, err)
	}
	defer m.ctx.CloseSession(sh)
	if err := m.ctx.Login(sh, pkcs11.CKU_SO, string(soPIN)); err != nil {
		return TokenInfo{}, fmt.Errorf("hsm: security-officer login on new token %q: %w", label, err)
	}
	defer m.ctx.Logout(sh)
	if err := m.ctx.InitPIN(sh, string(userPIN)); err != nil {
		return TokenInfo{}, fmt.Errorf("hsm: setting the user PIN of new token %q: %w", label, err)
	}
	ti, err := m.ctx.GetTokenInfo(slot)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("hsm: reading new token %q: %w", label, err)
	}
	return tokenInfo(m, slot, ti), nil
}
