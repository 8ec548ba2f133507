package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

var (
	// ErrTokenNotFound: no initialised token has the configured label or serial.
	ErrTokenNotFound = errors.New("token not found")
	// ErrKeyNotFound: no private key in the token has the requested id or label.
	ErrKeyNotFound = errors.New("key not found")
	// ErrKeyExists: a key with the requested id or label is already in the token.
	ErrKeyExists = errors.New("key already exists")
	// ErrBadPIN: the token refused the PIN. The PIN itself is never in the message.
	ErrBadPIN = errors.New("the token refused the PIN")
	// ErrOtherPIN: the token is already logged in, by this process, with a
	// different PIN (a stale wrapped PIN, say). The token is not asked:
	// logging the working sessions out would fail concurrent signing, and
	// trying the PIN would spend the token's retry counter. It wraps
	// ErrBadPIN.
	ErrOtherPIN = fmt.Errorf("the token is logged in with another PIN: %w", ErrBadPIN)
	// ErrPINLocked: the token locked its user PIN after too many wrong tries.
	ErrPINLocked = errors.New("the token's user PIN is locked")
	// ErrNotLoggedIn: an operation that needs the user PIN ran before Login.
	ErrNotLoggedIn = errors.New("not logged in to the token: a PIN is needed")
	// ErrUnsupported: a key type, hash or signing option the package does not offer.
	ErrUnsupported = errors.New("unsupported")
)

// isCode reports whether err is the PKCS#11 return value code.
func isCode(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// recoverable reports whether err means the sessions (or the whole module
// state) are gone, so that reopening sessions and logging in again can help.
func recoverable(err error) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch uint(e) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID,
		pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
		pkcs11.CKR_DEVICE_ERROR,
		pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_SLOT_ID_INVALID,
		pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
		pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_KEY_HANDLE_INVALID:
		return true
	}
	return false
}

// loginError turns a C_Login failure into an error that says what to do,
// without the PIN.
func loginError(err error) error {
	switch {
	case isCode(err, pkcs11.CKR_PIN_INCORRECT), isCode(err, pkcs11.CKR_PIN_INVALID), isCode(err, pkcs11.CKR_PIN_LEN_RANGE):
		return ErrBadPIN
	case isCode(err, pkcs11.CKR_PIN_LOCKED):
		return ErrPINLocked
	}
	return err
}
