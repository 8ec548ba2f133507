package store

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestHashPasswordDefault(t *testing.T) {
	h, err := HashPassword([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=65536,t=2,p=2\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(h) {
		t.Errorf("hash %q does not have the expected PHC form", h)
	}
	if ok, err := VerifyPassword(h, []byte("correct horse")); !ok || err != nil {
		t.Errorf("VerifyPassword(right) = %v, %v", ok, err)
	}
	if ok, err := VerifyPassword(h, []byte("correct horsf")); ok || err != nil {
		t.Errorf("VerifyPassword(wrong) = %v, %v", ok, err)
	}
	if p := DefaultArgon2Params(); p != (Argon2Params{Time: 2, MemoryKiB: 65536, Threads: 2, SaltLen: 16, KeyLen: 32}) {
		t.Errorf("DefaultArgon2Params = %+v", p)
	}
}

func TestVerifyPassword(t *testing.T) {
	h1, err := HashPasswordWithParams([]byte("pw"), cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPasswordWithParams([]byte("pw"), cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	if h1 == h2 {
		t.Error("two hashes of the same password are equal: salt not random")
	}
	tests := []struct {
		name string
		pw   string
		want bool
	}{
		{"right", "pw", true},
		{"wrong", "pW", false},
		{"empty", "", false},
		{"prefix", "p", false},
		{"longer", "pw\x00", false},
	}
	for _, tt := range tests {
		for _, h := range []string{h1, h2} {
			if ok, err := VerifyPassword(h, []byte(tt.pw)); ok != tt.want || err != nil {
				t.Errorf("%s: VerifyPassword = %v, %v; want %v, nil", tt.name, ok, err, tt.want)
			}
		}
	}
	if _, err := HashPassword(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("HashPassword(empty) error = %v", err)
	}
	if _, err := HashPasswordWithParams([]byte("pw"), Argon2Params{Time: 1, MemoryKiB: 2 << 20, Threads: 1, SaltLen: 16, KeyLen: 32}); !errors.Is(err, ErrInvalid) {
		t.Errorf("HashPasswordWithParams(2 GiB memory) error = %v, want ErrInvalid", err)
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	good, err := HashPasswordWithParams([]byte("secret-pw"), cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", alg, v, params, salt, hash
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	tests := []struct {
		name, encoded string
	}{
		{"empty", ""},
		{"plaintext", "secret-pw"},
		{"argon2i", with(1, "argon2i")},
		{"bcrypt", "$2b$10$abcdefghijklmnopqrstuu5Jz6bRnJf0TqXy3b6m1Z7k7hQeGyyG"},
		{"old version", with(2, "v=16")},
		{"memory above 1 GiB", with(3, "m=1048577,t=1,p=1")},
		{"memory overflow", with(3, "m=4294967296,t=1,p=1")},
		{"memory below 8*p", with(3, "m=15,t=1,p=2")},
		{"time zero", with(3, "m=64,t=0,p=1")},
		{"huge time", with(3, "m=64,t=1000000,p=1")},
		{"zero threads", with(3, "m=64,t=1,p=0")},
		{"threads overflow", with(3, "m=64,t=1,p=256")},
		{"reordered params", with(3, "t=1,m=64,p=1")},
		{"extra param", with(3, "m=64,t=1,p=1,k=1")},
		{"signed param", with(3, "m=+64,t=1,p=1")},
		{"short salt", with(4, "AAAA")},
		{"salt not base64", with(4, "!!!!!!!!!!!!!!!!!!!!!!")},
		{"padded salt", with(4, parts[4]+"==")},
		{"short hash", with(5, "AAAAAAAAAAAAAAAAAAAA")},
		{"hash not base64", with(5, strings.Repeat("*", 43))},
		{"missing field", strings.Join(parts[:5], "$")},
		{"extra field", good + "$x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.encoded, []byte("secret-pw"))
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("VerifyPassword = %v, %v; want false, ErrMalformedHash", ok, err)
			}
			if err != nil && (strings.Contains(err.Error(), "secret-pw") || (len(tt.encoded) > 8 && strings.Contains(err.Error(), tt.encoded))) {
				t.Errorf("error leaks its input: %v", err)
			}
		})
	}
}
