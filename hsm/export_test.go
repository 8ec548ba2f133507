package hsm

import (
	"crypto"

	"github.com/miekg/pkcs11"
)

// Hooks that break a token's state behind its back, as a restarted
// connector, an unplugged device or another library user would.

// CloseAllSessionsBehindBack closes every session of the token's slot.
func CloseAllSessionsBehindBack(t *Token) error { return t.mod.ctx.CloseAllSessions(t.slot) }

// LogoutBehindBack logs the token's user out through a session of its own.
func LogoutBehindBack(t *Token) error {
	sh, err := t.mod.ctx.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return err
	}
	defer t.mod.ctx.CloseSession(sh)
	return t.mod.ctx.Logout(sh)
}

// FinalizeBehindBack finalises the whole module, as a library that shares
// the process might.
func FinalizeBehindBack(t *Token) error { return t.mod.ctx.Finalize() }

// MaxOpenSessions is the most sessions t ever had open at once.
func MaxOpenSessions(t *Token) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxOpen
}

// RawSession returns a function that signs with bare C_SignInit + C_Sign on
// a session of its own, outside the pool: the baseline the Signer is
// measured against. The mechanism and input are prepared once, as a
// hand-written loop would.
func RawSession(k *Key, digest []byte, opts crypto.SignerOpts) (sign func() error, done func(), err error) {
	mech, data, err := k.mechanism(digest, opts)
	if err != nil {
		return nil, nil, err
	}
	c := k.t.mod.ctx
	sh, err := c.OpenSession(k.t.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, nil, err
	}
	h, err := k.handle(c, sh, k.t.gen)
	if err != nil {
		c.CloseSession(sh)
		return nil, nil, err
	}
	sign = func() error {
		if err := c.SignInit(sh, mech, h); err != nil {
			return err
		}
		_, err := c.Sign(sh, data)
		return err
	}
	return sign, func() { c.CloseSession(sh) }, nil
}

// InjectError makes the next operation on t fail with the PKCS#11 code.
func InjectError(t *Token, code uint) { t.inject.Store(uint64(code)) }

// HoldSlots takes n of t's session slots, as n operations in progress
// would, until the returned function is called.
func HoldSlots(t *Token, n int) (release func()) {
	for range n {
		t.sem <- struct{}{}
	}
	return func() {
		for range n {
			<-t.sem
		}
	}
}
