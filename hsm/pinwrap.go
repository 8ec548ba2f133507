package hsm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// ErrBadPassphrase: the passphrase does not unwrap the PIN. It is the only
// error a wrong passphrase gives, after the full KDF cost, so neither the
// message nor the time taken says anything about the passphrase.
var ErrBadPassphrase = errors.New("wrong passphrase")

// KDFParams are Argon2id's cost parameters, stored in every wrapped PIN so
// they can be raised later without breaking existing grants.
type KDFParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultKDF returns the default cost, about 0.1 s and 64 MiB on a current
// server core: enough to make offline guessing of a stolen database
// expensive, and paid once per passphrase per cache period, not per
// signature (see Unwrapper). It is a function so that no importer can
// lower it for the whole process.
func DefaultKDF() KDFParams { return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 2} }

// Limits on stored parameters, so a tampered database cannot make the
// server spend unbounded memory or time on one request.
const (
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFTime      = 32
	wrapVersion     = 1
	saltLen         = 16
	headerLen       = 1 + 4 + 4 + 1 + saltLen + 12 // version, time, memory, threads, salt, nonce
)

// Binding names what a wrapped PIN is for. Both names are bound into the
// AEAD as associated data, so a wrapped PIN copied to another user's or
// another key's row does not unwrap.
type Binding struct {
	Key  string
	User string
}

func (b Binding) ad() []byte {
	ad := []byte("signet wrapped token PIN v1\x00")
	for _, s := range []string{b.Key, b.User} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s)))
		ad = append(ad, s...)
	}
	return ad
}

// WrapPIN encrypts a token PIN under a key derived from passphrase with
// Argon2id (params, fresh salt), using AES-256-GCM with the binding as
// associated data. The result is self-describing: version, parameters,
// salt, nonce, ciphertext and tag.
func WrapPIN(pin, passphrase []byte, b Binding, params KDFParams) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("hsm: refusing to wrap a PIN under an empty passphrase")
	}
	if len(pin) == 0 {
		return nil, errors.New("hsm: refusing to wrap an empty PIN")
	}
	if err := params.check(); err != nil {
		return nil, err
	}
	out := make([]byte, headerLen, headerLen+len(pin)+16)
	out[0] = wrapVersion
	binary.BigEndian.PutUint32(out[1:], params.Time)
	binary.BigEndian.PutUint32(out[5:], params.MemoryKiB)
	out[9] = params.Threads
	if _, err := rand.Read(out[10:headerLen]); err != nil { // salt and nonce
		return nil, err
	}
	aead, err := params.aead(passphrase, out[10:10+saltLen])
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, out[10+saltLen:headerLen], pin, b.ad()), nil
}

// UnwrapPIN reverses WrapPIN. A wrong passphrase, or a wrapped PIN that
// belongs to another key or user, gives ErrBadPassphrase and nothing else.
func UnwrapPIN(wrapped, passphrase []byte, b Binding) ([]byte, error) {
	if len(wrapped) < headerLen+16 || wrapped[0] != wrapVersion {
		return nil, errors.New("hsm: wrapped PIN is malformed or of an unknown version")
	}
	params, err := WrappedKDF(wrapped)
	if err != nil {
		return nil, err
	}
	aead, err := params.aead(passphrase, wrapped[10:10+saltLen])
	if err != nil {
		return nil, err
	}
	pin, err := aead.Open(nil, wrapped[10+saltLen:headerLen], wrapped[headerLen:], b.ad())
	if err != nil {
		return nil, ErrBadPassphrase
	}
	return pin, nil
}

func (p KDFParams) check() error {
	if p.Time < 1 || p.Time > maxKDFTime || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("hsm: Argon2id parameters t=%d m=%dKiB p=%d are out of range", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// kdfRuns counts Argon2id runs.
var kdfRuns atomic.Int64

// KDFRuns is how many times this process has run Argon2id to wrap or
// unwrap a PIN: a figure for metrics, and for tests that check a refusal
// cost the same work as a success.
func KDFRuns() int64 { return kdfRuns.Load() }

func (p KDFParams) aead(passphrase, salt []byte) (cipher.AEAD, error) {
	kdfRuns.Add(1)
	key := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(key)
	// Argon2id's memory (64 MiB by default, per run) is garbage now; give
	// it back to the system at once rather than keep a long-running
	// server's footprint at the peak of its busiest KDF moment. A run
	// costs far more than the collection.
	debug.FreeOSMemory()
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Unwrapper unwraps PINs and remembers successful unwraps for a short
// time, so that a build system signing thousands of packages with the same
// passphrase pays the memory-hard KDF once per period instead of once per
// request. Only successes are cached: every wrong passphrase pays the full
// KDF. Entries are keyed by an HMAC, under a key that exists only in this
// process's memory, of the wrapped PIN, the passphrase and the binding; the
// passphrase itself is not kept. A changed passphrase or a revoked access
// changes or removes the wrapped PIN, so stale entries are never reached.
type Unwrapper struct {
	ttl    time.Duration
	max    int
	macKey [32]byte

	mu      sync.Mutex
	entries map[[32]byte]cacheEntry
	// inflight holds unwraps in progress, so that many requests arriving
	// at once with the same passphrase run Argon2id (and its memory) once.
	inflight map[[32]byte]*unwrapCall
}

type unwrapCall struct {
	done chan struct{}
	pin  []byte
	err  error
}

type cacheEntry struct {
	pin     []byte
	expires time.Time
	// timer zeroes and drops the entry when it expires, so that a PIN
	// no request asks for again does not stay in memory.
	timer *time.Timer
}

// NewUnwrapper returns an Unwrapper whose entries live for ttl (zero
// disables the cache) and of which at most max are kept.
func NewUnwrapper(ttl time.Duration, max int) *Unwrapper {
	u := &Unwrapper{ttl: ttl, max: max, entries: map[[32]byte]cacheEntry{}, inflight: map[[32]byte]*unwrapCall{}}
	if _, err := rand.Read(u.macKey[:]); err != nil {
		panic("hsm: no randomness: " + err.Error())
	}
	return u
}

// Unwrap returns the PIN wrapped in wrapped, from the cache when the same
// wrapped PIN, passphrase and binding unwrapped successfully less than ttl
// ago. The caller owns (and should zero) the returned slice.
func (u *Unwrapper) Unwrap(wrapped, passphrase []byte, b Binding) ([]byte, error) {
	if u.ttl <= 0 {
		return UnwrapPIN(wrapped, passphrase, b)
	}
	id := u.id(wrapped, passphrase, b)
	now := time.Now()
	u.mu.Lock()
	if e, ok := u.entries[id]; ok && now.Before(e.expires) {
		u.mu.Unlock()
		return append([]byte(nil), e.pin...), nil
	}
	if c, ok := u.inflight[id]; ok {
		u.mu.Unlock()
		<-c.done
		if c.err != nil {
			return nil, c.err
		}
		return append([]byte(nil), c.pin...), nil
	}
	c := &unwrapCall{done: make(chan struct{})}
	u.inflight[id] = c
	u.mu.Unlock()

	pin, err := UnwrapPIN(wrapped, passphrase, b)
	u.mu.Lock()
	delete(u.inflight, id)
	if err == nil {
		for k, old := range u.entries {
			if !now.Before(old.expires) || len(u.entries) >= u.max {
				u.drop(k, old)
			}
		}
		if len(u.entries) < u.max {
			if old, ok := u.entries[id]; ok {
				u.drop(id, old)
			}
			u.entries[id] = cacheEntry{pin: append([]byte(nil), pin...), expires: now.Add(u.ttl),
				timer: time.AfterFunc(u.ttl, func() { u.expire(id) })}
		}
		// Waiters copy the PIN before the caller may zero its own copy.
		c.pin = append([]byte(nil), pin...)
	}
	c.err = err
	u.mu.Unlock()
	close(c.done)
	return pin, err
}

// Forget drops every cached PIN, e.g. when the server is told to.
func (u *Unwrapper) Forget() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, e := range u.entries {
		u.drop(k, e)
	}
}

// drop zeroes and removes an entry; u.mu is held.
func (u *Unwrapper) drop(id [32]byte, e cacheEntry) {
	if e.timer != nil {
		e.timer.Stop()
	}
	clear(e.pin)
	delete(u.entries, id)
}

// expire is an entry's timer: it drops the entry once it has expired.
func (u *Unwrapper) expire(id [32]byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if e, ok := u.entries[id]; ok && !time.Now().Before(e.expires) {
		u.drop(id, e)
	}
}

func (u *Unwrapper) id(wrapped, passphrase []byte, b Binding) [32]byte {
	m := hmac.New(sha256.New, u.macKey[:])
	for _, part := range [][]byte{wrapped, passphrase, b.ad()} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		m.Write(n[:])
		m.Write(part)
	}
	var id [32]byte
	m.Sum(id[:0])
	return id
}

// WrappedKDFLen is how many leading bytes of a wrapped PIN WrappedKDF
// needs: the version and the KDF parameters.
const WrappedKDFLen = 10

// WrappedKDF returns the Argon2id parameters a wrapped PIN was made with,
// read from its first WrappedKDFLen bytes, and an error for a header of an
// unknown version or with parameters out of range.
func WrappedKDF(header []byte) (KDFParams, error) {
	if len(header) < WrappedKDFLen || header[0] != wrapVersion {
		return KDFParams{}, errors.New("hsm: wrapped PIN is malformed or of an unknown version")
	}
	p := KDFParams{
		Time:      binary.BigEndian.Uint32(header[1:]),
		MemoryKiB: binary.BigEndian.Uint32(header[5:]),
		Threads:   header[9],
	}
	return p, p.check()
}

// DecoyWrappedPIN returns random bytes shaped like a PIN wrapped with
// params: UnwrapPIN runs the full KDF on them, as on a real one, then fails
// with ErrBadPassphrase (no passphrase can open random bytes). Making one
// costs no KDF run, so having to make it does not show in a refusal's time.
func DecoyWrappedPIN(params KDFParams) ([]byte, error) {
	if err := params.check(); err != nil {
		return nil, err
	}
	out := make([]byte, headerLen+16+16) // a 16-byte PIN and its tag
	out[0] = wrapVersion
	binary.BigEndian.PutUint32(out[1:], params.Time)
	binary.BigEndian.PutUint32(out[5:], params.MemoryKiB)
	out[9] = params.Threads
	if _, err := rand.Read(out[10:]); err != nil {
		return nil, err
	}
	return out, nil
}
