package hsm

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// defaultMaxSessions is the session cap when Config.MaxSessions is zero: a
// YubiHSM 2 allows 16 sessions per device and reports no limit of its own.
const defaultMaxSessions = 16

// Config names a token. Exactly one of TokenLabel and TokenSerial should be
// set; when both are, the serial wins.
type Config struct {
	// Module is the path of the PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so or /usr/lib/x86_64-linux-gnu/pkcs11/yubihsm_pkcs11.so.
	Module      string
	TokenLabel  string
	TokenSerial string
	// MaxSessions caps the sessions this process opens on the token
	// (defaultMaxSessions when zero). It is also lowered to the token's own
	// limit when the token reports one.
	MaxSessions int
}

// Token is one opened token. Its methods are safe for concurrent use; at
// most the session cap of them talk to the token at once, the others wait.
type Token struct {
	cfg Config
	mod *module
	sem chan struct{} // one slot per session this process may have open

	mu       sync.Mutex
	slot     uint
	info     TokenInfo
	gen      uint64 // bumped by every recovery; older sessions are discarded
	idle     []session
	pin      []byte // kept to log in again after a recovery; zeroed by Close
	loggedIn bool
	closed   bool
	open     int // sessions open now, idle or in use
	maxOpen  int // the most that were ever open at once

	// inject, when non-zero, is a PKCS#11 error code that the next
	// operation fails with instead of running: how tests simulate a device
	// error or a removed token, which SoftHSM2 cannot produce.
	inject atomic.Uint64

	waiting  atomic.Int64                        // callers waiting for a session slot
	observer atomic.Pointer[func(time.Duration)] // told each acquire's wait
	signCPU  atomic.Int64                        // ns of thread CPU time inside C_SignInit and C_Sign
}

type session struct {
	h   pkcs11.SessionHandle
	gen uint64
}

// Open loads the module, finds the token by label or serial, and returns it
// without logging in. Operations on private keys need Login first.
func Open(cfg Config) (*Token, error) {
	if cfg.MaxSessions < 0 {
		return nil, fmt.Errorf("hsm: MaxSessions %d is negative", cfg.MaxSessions)
	}
	m, err := loadModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	slot, info, err := m.findSlot(cfg.TokenLabel, cfg.TokenSerial)
	if err != nil {
		m.release()
		return nil, err
	}
	limit := cfg.MaxSessions
	if limit == 0 {
		limit = defaultMaxSessions
	}
	if info.MaxSessions > 0 && uint(limit) > info.MaxSessions {
		limit = int(info.MaxSessions)
	}
	cfg.MaxSessions = limit
	return &Token{cfg: cfg, mod: m, sem: make(chan struct{}, limit), slot: slot, info: info}, nil
}

// Info describes the token as it was when opened (or last recovered).
func (t *Token) Info() TokenInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info
}

// MaxSessions is the session cap in force.
func (t *Token) MaxSessions() int { return cap(t.sem) }

// SessionsInUse is how many of the MaxSessions slots operations hold now.
func (t *Token) SessionsInUse() int { return len(t.sem) }

// SessionsWaiting is how many operations wait now for a free slot.
func (t *Token) SessionsWaiting() int { return int(t.waiting.Load()) }

// SignCPU is the CPU time this process's threads have spent inside the
// module's C_SignInit and C_Sign for Key.Sign so far (zero where the
// thread CPU clock is not read: outside Linux). For a software token such
// as SoftHSM2 it is the signatures' cost; for a device, little more than
// the calls' own.
func (t *Token) SignCPU() time.Duration { return time.Duration(t.signCPU.Load()) }

// ObserveWait makes every operation report how long it waited for a
// session slot (zero when one was free), to f; nil stops the reports. f
// must be quick and safe for concurrent use.
func (t *Token) ObserveWait(f func(time.Duration)) {
	if f == nil {
		t.observer.Store(nil)
		return
	}
	t.observer.Store(&f)
}

// takeSlot takes one of the session slots, waiting for one if all are in
// use, and reports the wait to the observer.
func (t *Token) takeSlot() {
	select {
	case t.sem <- struct{}{}:
		if f := t.observer.Load(); f != nil {
			(*f)(0)
		}
		return
	default:
	}
	start := time.Now()
	t.waiting.Add(1)
	t.sem <- struct{}{}
	t.waiting.Add(-1)
	if f := t.observer.Load(); f != nil {
		(*f)(time.Since(start))
	}
}

// Login logs in as the token's user. The token checks the PIN at once; a
// wrong one gives ErrBadPIN. The Token keeps a private copy of the PIN in
// memory to log in again after a recovery, until Close. Once logged in,
// the same PIN is accepted (compared in constant time) and any other gives
// ErrOtherPIN without asking the token: a PIN that differs from one the
// token accepted is wrong or stale, and trying it would log out the
// sessions that are signing and spend the token's retry counter.
func (t *Token) Login(pin []byte) error {
	if len(pin) == 0 {
		return fmt.Errorf("hsm: empty PIN for token %q: %w", t.cfg.TokenLabel, ErrBadPIN)
	}
	t.mu.Lock()
	old := append([]byte(nil), t.pin...)
	t.mu.Unlock()
	defer clear(old)
	if len(old) > 0 {
		if subtle.ConstantTimeCompare(old, pin) == 1 {
			return nil
		}
		return fmt.Errorf("hsm: login to token %q: %w", t.name(), ErrOtherPIN)
	}
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) error {
		err := c.Login(sh, pkcs11.CKU_USER, string(pin))
		if err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			return loginError(err)
		}
		t.mu.Lock()
		clear(t.pin)
		t.pin = append([]byte(nil), pin...)
		t.loggedIn = true
		t.mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("hsm: login to token %q: %w", t.name(), err)
	}
	return nil
}

// LoggedIn reports whether the token has accepted a PIN from this process.
func (t *Token) LoggedIn() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pin != nil
}

// Close closes every session, forgets the PIN, and unloads the module when
// no other Token uses it. Keys from this token stop working.
func (t *Token) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for _, s := range t.idle {
		t.mod.ctx.CloseSession(s.h)
	}
	t.idle = nil
	clear(t.pin)
	t.pin = nil
	t.mu.Unlock()
	t.mod.release()
	return nil
}

func (t *Token) name() string {
	if t.cfg.TokenSerial != "" {
		return "serial " + t.cfg.TokenSerial
	}
	return t.cfg.TokenLabel
}

// acquire takes a session slot and returns an open, logged-in (when a PIN is
// known) session. It also returns the generation it saw, for recover.
func (t *Token) acquire() (session, uint64, error) {
	t.takeSlot()
	t.mu.Lock()
	defer t.mu.Unlock()
	gen := t.gen
	if t.closed {
		<-t.sem
		return session{}, gen, errors.New("hsm: token is closed")
	}
	var s session
	if n := len(t.idle); n > 0 {
		s = t.idle[n-1]
		t.idle = t.idle[:n-1]
	} else {
		h, err := t.mod.ctx.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			<-t.sem
			return session{}, gen, fmt.Errorf("hsm: opening a session on token %q: %w", t.name(), err)
		}
		s = session{h: h, gen: gen}
		t.open++
		t.maxOpen = max(t.maxOpen, t.open)
	}
	if t.pin != nil && !t.loggedIn {
		err := t.mod.ctx.Login(s.h, pkcs11.CKU_USER, string(t.pin))
		if err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			t.mod.ctx.CloseSession(s.h)
			t.open--
			<-t.sem
			return session{}, gen, fmt.Errorf("hsm: logging in again to token %q: %w", t.name(), loginError(err))
		}
		t.loggedIn = true
	}
	return s, gen, nil
}

// release returns a session to the pool, or closes it when it belongs to
// an older generation or failed in a way that suggests it is dead.
func (t *Token) release(s session, opErr error) {
	t.mu.Lock()
	if s.gen == t.gen && !t.closed && !recoverable(opErr) {
		t.idle = append(t.idle, s)
	} else {
		t.mod.ctx.CloseSession(s.h)
		t.open--
	}
	t.mu.Unlock()
	<-t.sem
}

// do runs fn on a pooled session. If fn fails in a way that means the
// sessions, the login or the module state are gone, do recovers (new
// sessions, slot found again by label or serial, login again with the kept
// PIN) and tries fn once more. If that fails too, the error is returned and
// the next call starts the same way, so a token that comes back is used
// again without restarting the process.
func (t *Token) do(fn func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		var s session
		var gen uint64
		s, gen, err = t.acquire()
		if err == nil {
			if code := t.inject.Swap(0); code != 0 {
				err = pkcs11.Error(code)
			} else {
				err = fn(t.mod.ctx, s.h, s.gen)
			}
			t.release(s, err)
			if err == nil {
				return nil
			}
		}
		if !recoverable(err) || attempt == 1 {
			break
		}
		if rerr := t.recover(gen, err); rerr != nil {
			return fmt.Errorf("%w (recovery failed: %v)", err, rerr)
		}
	}
	if isCode(err, pkcs11.CKR_USER_NOT_LOGGED_IN) {
		t.mu.Lock()
		nopin := t.pin == nil
		t.mu.Unlock()
		if nopin {
			return fmt.Errorf("hsm: token %q: %w", t.name(), ErrNotLoggedIn)
		}
	}
	return err
}

// recover discards every session of generation gen and finds the token
// again. Concurrent callers that saw the same generation recover once.
func (t *Token) recover(gen uint64, cause error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("token is closed")
	}
	if gen != t.gen {
		return nil // another goroutine already recovered
	}
	t.gen++
	for _, s := range t.idle {
		t.mod.ctx.CloseSession(s.h)
	}
	t.open -= len(t.idle)
	t.idle = nil
	t.loggedIn = false
	if isCode(cause, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		if err := t.mod.reinitialize(); err != nil {
			return err
		}
	}
	if isCode(cause, pkcs11.CKR_DEVICE_ERROR) || isCode(cause, pkcs11.CKR_DEVICE_REMOVED) || isCode(cause, pkcs11.CKR_TOKEN_NOT_PRESENT) {
		// Sessions still held by other goroutines are dead too; close them so
		// the token (and a YubiHSM connector) frees its session slots.
		t.mod.ctx.CloseAllSessions(t.slot)
	}
	slot, info, err := t.mod.findSlot(t.cfg.TokenLabel, t.cfg.TokenSerial)
	if err != nil {
		return err
	}
	t.slot, t.info = slot, info
	return nil
}

// SetPIN changes the token's user PIN from old to new (C_SetPIN in a
// session logged in as the user). The Token must be logged in with old;
// afterwards it keeps new for logging in again. A YubiHSM 2's PIN is its
// authentication key id and password: changing it is done with Yubico's
// tools, and its module refuses C_SetPIN.
func (t *Token) SetPIN(old, new []byte) error {
	if len(new) == 0 {
		return fmt.Errorf("hsm: refusing an empty new PIN for token %q", t.name())
	}
	t.mu.Lock()
	cur := append([]byte(nil), t.pin...)
	t.mu.Unlock()
	defer clear(cur)
	if len(cur) == 0 {
		return fmt.Errorf("hsm: changing the PIN of token %q: %w", t.name(), ErrNotLoggedIn)
	}
	if subtle.ConstantTimeCompare(cur, old) != 1 {
		return fmt.Errorf("hsm: changing the PIN of token %q: %w", t.name(), ErrOtherPIN)
	}
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) error {
		if err := c.SetPIN(sh, string(old), string(new)); err != nil {
			return loginError(err)
		}
		t.mu.Lock()
		clear(t.pin)
		t.pin = append([]byte(nil), new...)
		t.mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("hsm: changing the PIN of token %q: %w", t.name(), err)
	}
	return nil
}
