package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are Argon2id cost parameters for admin password hashes.
type Argon2Params struct {
	// Time is the number of passes over memory.
	Time uint32
	// MemoryKiB is the memory cost in KiB.
	MemoryKiB uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen is the random salt length in bytes.
	SaltLen uint32
	// KeyLen is the derived hash length in bytes.
	KeyLen uint32
}

// Bounds on Argon2id parameters. A hash outside them is treated as
// malformed rather than verified, so that a tampered hash string cannot make
// VerifyPassword allocate or compute absurdly.
const (
	maxArgonTime      = 64
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	minArgonSaltLen   = 8
	maxArgonSaltLen   = 64
	minArgonKeyLen    = 16
	maxArgonKeyLen    = 64
)

// DefaultArgon2Params returns the parameters [HashPassword] uses: time=2,
// memory=64 MiB, threads=2, 16-byte salt, 32-byte hash.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Time: 2, MemoryKiB: 64 * 1024, Threads: 2, SaltLen: 16, KeyLen: 32}
}

// check reports parameters outside the accepted bounds.
func (p Argon2Params) check() error {
	switch {
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("time cost %d outside 1..%d", p.Time, maxArgonTime)
	case p.Threads < 1:
		return fmt.Errorf("parallelism 0")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgonMemoryKiB:
		return fmt.Errorf("memory cost %d KiB outside %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxArgonMemoryKiB)
	case p.SaltLen < minArgonSaltLen || p.SaltLen > maxArgonSaltLen:
		return fmt.Errorf("salt length %d outside %d..%d", p.SaltLen, minArgonSaltLen, maxArgonSaltLen)
	case p.KeyLen < minArgonKeyLen || p.KeyLen > maxArgonKeyLen:
		return fmt.Errorf("hash length %d outside %d..%d", p.KeyLen, minArgonKeyLen, maxArgonKeyLen)
	}
	return nil
}

// HashPassword hashes an admin password with Argon2id and
// [DefaultArgon2Params], returning a PHC string
// "$argon2id$v=19$m=65536,t=2,p=2$<salt>$<hash>" (unpadded standard
// base64). The password must not be empty.
func HashPassword(pw []byte) (string, error) {
	return HashPasswordWithParams(pw, DefaultArgon2Params())
}

// HashPasswordWithParams is [HashPassword] with explicit parameters, which
// must lie within the bounds VerifyPassword accepts (otherwise the error
// matches [ErrInvalid]). Use it for cheap
// hashes in tests; production code should call HashPassword.
func HashPasswordWithParams(pw []byte, p Argon2Params) (string, error) {
	if len(pw) == 0 {
		return "", invalid("empty password")
	}
	if err := p.check(); err != nil {
		return "", invalid("argon2 parameters: %v", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("store: hash password: %w", err)
	}
	key := argon2.IDKey(pw, salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a parsed Argon2id PHC string.
type phc struct {
	params Argon2Params
	salt   []byte
	key    []byte
}

// parsePHC parses and bounds-checks an Argon2id PHC string in exactly the
// form HashPassword produces. Errors wrap ErrMalformedHash and never
// include the input.
func parsePHC(encoded string) (phc, error) {
	bad := func(why string) (phc, error) {
		return phc{}, fmt.Errorf("store: %w: %s", ErrMalformedHash, why)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("not a PHC string with 5 fields")
	}
	if parts[1] != "argon2id" {
		return bad("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported argon2 version")
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return bad("parameters are not m=,t=,p=")
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return bad("parameters are not m=,t=,p=")
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return bad("parameter " + name + " is not a number in range")
		}
		vals[i] = n
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return bad("salt is not unpadded base64")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return bad("hash is not unpadded base64")
	}
	p := Argon2Params{
		MemoryKiB: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2]),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key)),
	}
	if err := p.check(); err != nil {
		return bad(err.Error())
	}
	return phc{params: p, salt: salt, key: key}, nil
}

// VerifyPassword reports whether pw matches encoded, a PHC string from
// [HashPassword], recomputing Argon2id with the parameters stored in it and
// comparing in constant time. A malformed string, or one whose parameters
// are out of bounds (e.g. memory above 1 GiB), yields false and an error
// matching [ErrMalformedHash]; a wrong password yields false and nil.
func VerifyPassword(encoded string, pw []byte) (bool, error) {
	h, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	p := h.params
	key := argon2.IDKey(pw, h.salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}
