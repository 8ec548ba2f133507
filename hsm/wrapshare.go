package hsm

// Custodian shares of a wrap key: Shamir's secret sharing (circl's
// secretsharing, over the scalar field of P-384, whose order exceeds 2^256,
// so a 32-byte key is one field element as it is), one text file per
// custodian with a checksum over every field.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
)

// MaxShares is the most shares a wrap key may be split into.
const MaxShares = 32

var shareGroup = group.P384

// scalarSize is the size of a P-384 scalar.
const scalarSize = 48

// Share is one custodian's share of a wrap key.
type Share struct {
	Split     string // random id of the split, 16 hex digits
	WrapKeyID string // the id of the key the shares reconstruct
	Index     int    // 1..Total
	Total     int    // N
	Threshold int    // M: shares needed
	Custodian string // who holds it; a name, or "share-I"
	Value     []byte // the share, 48 bytes
}

// Wipe zeroes the share's value.
func (s *Share) Wipe() { clear(s.Value) }

var custodianRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// CheckCustodian checks a custodian name: it is part of a file name.
func CheckCustodian(name string) error {
	if !custodianRE.MatchString(name) {
		return fmt.Errorf("custodian name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name)
	}
	return nil
}

// NewWrapKey returns a fresh random AES-256 wrap key, made outside any
// token. The caller wipes it.
func NewWrapKey() ([]byte, error) {
	k := make([]byte, wrapKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// SplitWrapKey splits key into total shares of which threshold reconstruct
// it, with Shamir's scheme. custodians, if given, names the holder of each
// share. Every combination of threshold shares is not tried, but the first
// threshold and the last threshold are combined again and checked before
// the shares are returned.
func SplitWrapKey(key []byte, threshold, total int, custodians []string) ([]Share, error) {
	if len(key) != wrapKeySize {
		return nil, fmt.Errorf("hsm: a wrap key is %d bytes, not %d", wrapKeySize, len(key))
	}
	if total < 2 || total > MaxShares || threshold < 2 || threshold > total {
		return nil, fmt.Errorf("hsm: %d-of-%d: need 2 <= threshold <= shares <= %d", threshold, total, MaxShares)
	}
	if custodians != nil && len(custodians) != total {
		return nil, fmt.Errorf("hsm: %d custodians named for %d shares", len(custodians), total)
	}
	seen := map[string]bool{}
	for _, c := range custodians {
		if err := CheckCustodian(c); err != nil {
			return nil, err
		}
		if seen[c] {
			return nil, fmt.Errorf("custodian %q is named twice", c)
		}
		seen[c] = true
	}
	id, err := WrapKeyID(key)
	if err != nil {
		return nil, err
	}
	splitID := make([]byte, 8)
	if _, err := rand.Read(splitID); err != nil {
		return nil, err
	}
	buf := make([]byte, scalarSize)
	defer clear(buf)
	copy(buf[scalarSize-wrapKeySize:], key)
	secret := shareGroup.NewScalar()
	if err := secret.UnmarshalBinary(buf); err != nil {
		return nil, fmt.Errorf("hsm: wrap key as a scalar: %w", err)
	}
	ss := secretsharing.New(rand.Reader, uint(threshold-1), secret)
	wipeScalar(secret)
	parts := ss.Share(uint(total))
	out := make([]Share, total)
	for i, p := range parts {
		v, err := p.Value.MarshalBinary()
		wipeScalar(p.Value)
		if err != nil {
			return nil, err
		}
		out[i] = Share{Split: hex.EncodeToString(splitID), WrapKeyID: id, Index: i + 1, Total: total,
			Threshold: threshold, Custodian: fmt.Sprintf("share-%d", i+1), Value: v}
		if custodians != nil {
			out[i].Custodian = custodians[i]
		}
	}
	for _, sub := range [][]Share{out[:threshold], out[total-threshold:]} {
		k, err := CombineShares(sub)
		if err != nil {
			return nil, fmt.Errorf("hsm: the new shares do not combine: %w", err)
		}
		ok := subtle.ConstantTimeCompare(k, key) == 1
		clear(k)
		if !ok {
			return nil, errors.New("hsm: the new shares do not reconstruct the key")
		}
	}
	return out, nil
}

// wipeScalar overwrites a scalar's value with zero.
func wipeScalar(s group.Scalar) { s.SetUint64(0) }

// CombineShares reconstructs a wrap key from shares. It refuses fewer
// shares than the split's threshold, shares of different splits, the same
// share twice, and shares that do not reconstruct the key they name. The
// caller wipes the key.
func CombineShares(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, errors.New("no shares given")
	}
	first := shares[0]
	seen := map[int]string{}
	for _, s := range shares {
		if s.Split != first.Split || s.WrapKeyID != first.WrapKeyID || s.Threshold != first.Threshold || s.Total != first.Total {
			return nil, fmt.Errorf("share %d of %d (%s) belongs to split %s of wrap key %s, share %d of %d (%s) to split %s of wrap key %s: shares from different splits cannot be combined",
				s.Index, s.Total, s.Custodian, s.Split, s.WrapKeyID, first.Index, first.Total, first.Custodian, first.Split, first.WrapKeyID)
		}
		if c, dup := seen[s.Index]; dup {
			return nil, fmt.Errorf("share %d of %d is given twice (%s and %s)", s.Index, s.Total, c, s.Custodian)
		}
		seen[s.Index] = s.Custodian
		if len(s.Value) != scalarSize {
			return nil, fmt.Errorf("share %d of %d is %d bytes, not %d", s.Index, s.Total, len(s.Value), scalarSize)
		}
	}
	if len(shares) < first.Threshold {
		return nil, fmt.Errorf("%d shares given; wrap key %s needs %d of its %d shares", len(shares), first.WrapKeyID, first.Threshold, first.Total)
	}
	parts := make([]secretsharing.Share, len(shares))
	for i, s := range shares {
		v := shareGroup.NewScalar()
		if err := v.UnmarshalBinary(s.Value); err != nil {
			return nil, fmt.Errorf("share %d of %d (%s) is not a valid share", s.Index, s.Total, s.Custodian)
		}
		parts[i] = secretsharing.Share{ID: shareGroup.NewScalar().SetUint64(uint64(s.Index)), Value: v}
	}
	secret, err := secretsharing.Recover(uint(first.Threshold-1), parts)
	for _, p := range parts {
		wipeScalar(p.Value)
	}
	if err != nil {
		return nil, err
	}
	buf, err := secret.MarshalBinary()
	wipeScalar(secret)
	defer clear(buf)
	if err != nil {
		return nil, err
	}
	key := append([]byte(nil), buf[scalarSize-wrapKeySize:]...)
	id, err := WrapKeyID(key)
	if err == nil && (id != first.WrapKeyID || !allZero(buf[:scalarSize-wrapKeySize])) {
		err = fmt.Errorf("the shares do not reconstruct wrap key %s: at least one of them is wrong", first.WrapKeyID)
	}
	if err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

func allZero(b []byte) bool {
	var x byte
	for _, c := range b {
		x |= c
	}
	return x == 0
}

// FileName is the name of the share's file: which key, which share, whose.
func (s *Share) FileName() string {
	return fmt.Sprintf("wrap-key-%s-share-%d-of-%d-%s.txt", s.WrapKeyID, s.Index, s.Total, s.Custodian)
}

// checksum covers every field of the share, so that a mistyped or damaged
// share is refused before it is used.
func (s *Share) checksum() string {
	h := sha256.New()
	fmt.Fprintf(h, "signet wrap-key share v1\x00%s\x00%s\x00%d\x00%d\x00%d\x00%s\x00", s.Split, s.WrapKeyID, s.Index, s.Total, s.Threshold, s.Custodian)
	h.Write(s.Value)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

const shareHeader = "signet wrap-key share, version 1"

// Encode returns the share file's text. It holds the secret share: the
// caller writes it with private permissions and wipes the returned bytes.
func (s *Share) Encode() []byte {
	var b bytes.Buffer
	b.Grow(1024) // once: no reallocation leaves a copy of the share behind
	fmt.Fprintf(&b, "%s\n", shareHeader)
	fmt.Fprintf(&b, "# For custodian %s only. Any %d of the %d shares rebuild the key that\n", s.Custodian, s.Threshold, s.Total)
	fmt.Fprintf(&b, "# wraps signet's key backups; keep it offline, never copy it elsewhere.\n")
	fmt.Fprintf(&b, "custodian: %s\n", s.Custodian)
	fmt.Fprintf(&b, "wrap-key: %s\n", s.WrapKeyID)
	fmt.Fprintf(&b, "split: %s\n", s.Split)
	fmt.Fprintf(&b, "share: %d of %d\n", s.Index, s.Total)
	fmt.Fprintf(&b, "threshold: %d\n", s.Threshold)
	v := make([]byte, hex.EncodedLen(len(s.Value)))
	hex.Encode(v, s.Value)
	defer clear(v)
	for i := 0; i < len(v); i += 32 {
		b.WriteString("value: ")
		for j := i; j < i+32 && j < len(v); j += 8 {
			if j > i {
				b.WriteByte(' ')
			}
			b.Write(v[j:min(j+8, len(v))])
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "checksum: %s\n", s.checksum())
	return b.Bytes()
}

// ParseShare reads a share file. Any damage or typing mistake in a field
// fails the checksum; the message never shows the share's value.
func ParseShare(r io.Reader) (Share, error) {
	var s Share
	// The scanner reads into buf, and the value's digits go to value:
	// both are zeroed on return.
	buf := make([]byte, 4096)
	defer clear(buf)
	value := make([]byte, 0, 2*scalarSize)
	defer func() { clear(value[:cap(value)]) }()
	var sum string
	sc := bufio.NewScanner(io.LimitReader(r, 4096))
	sc.Buffer(buf, len(buf))
	have := map[string]bool{}
	first := true
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if first {
			if string(line) != shareHeader {
				return Share{}, errors.New("not a signet wrap-key share (the first line is wrong)")
			}
			first = false
			continue
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		kb, vb, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return Share{}, fmt.Errorf("line %d is not 'field: value'", n)
		}
		k, vb := string(bytes.TrimSpace(kb)), bytes.TrimSpace(vb)
		if k != "value" && have[k] {
			return Share{}, fmt.Errorf("line %d: %s is given twice", n, k)
		}
		have[k] = true
		if k == "value" {
			for _, c := range vb {
				if c == ' ' {
					continue
				}
				if len(value) == cap(value) {
					return Share{}, errors.New("the value is not 96 hex digits: mistyped or damaged")
				}
				value = append(value, c)
			}
			continue
		}
		v := string(vb)
		var err error
		switch k {
		case "custodian":
			s.Custodian = v
		case "wrap-key":
			s.WrapKeyID = strings.ToLower(v)
		case "split":
			s.Split = strings.ToLower(v)
		case "share":
			a, b, ok := strings.Cut(v, " of ")
			if !ok {
				return Share{}, fmt.Errorf("line %d: share is 'I of N'", n)
			}
			if s.Index, err = strconv.Atoi(strings.TrimSpace(a)); err == nil {
				s.Total, err = strconv.Atoi(strings.TrimSpace(b))
			}
		case "threshold":
			s.Threshold, err = strconv.Atoi(v)
		case "checksum":
			sum = strings.ToLower(v)
		default:
			return Share{}, fmt.Errorf("line %d: unknown field %q", n, k)
		}
		if err != nil {
			return Share{}, fmt.Errorf("line %d: %s is not a number", n, k)
		}
	}
	if err := sc.Err(); err != nil {
		return Share{}, err
	}
	for _, k := range []string{"custodian", "wrap-key", "split", "share", "threshold", "value", "checksum"} {
		if !have[k] {
			return Share{}, fmt.Errorf("the %s line is missing", k)
		}
	}
	val := make([]byte, scalarSize)
	if n, err := hex.Decode(val, value); err != nil || n != scalarSize || len(value) != 2*scalarSize {
		clear(val)
		return Share{}, errors.New("the value is not 96 hex digits: mistyped or damaged")
	}
	s.Value = val
	if subtle.ConstantTimeCompare([]byte(s.checksum()), []byte(sum)) != 1 {
		s.Wipe()
		return Share{}, errors.New("the checksum does not match: the share was mistyped or damaged")
	}
	if s.Index < 1 || s.Index > s.Total || s.Total > MaxShares || s.Threshold < 2 || s.Threshold > s.Total {
		s.Wipe()
		return Share{}, fmt.Errorf("share %d of %d with threshold %d is impossible", s.Index, s.Total, s.Threshold)
	}
	return s, nil
}
