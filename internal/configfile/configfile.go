// Package configfile reads a role's TOML configuration strictly: into one
// typed struct, refusing any key the struct does not name, so that a typo
// such as `max_file_paylod` is an error at start-up instead of a silent
// fall-back to the default. The message names the file, the key and the
// closest known key.
//
// Each role (server, bridge, robo) declares its keys once, as the
// mapstructure tags of its configuration struct; adding a key means adding
// a field. Nested tables are nested structs, arrays of tables are slices
// of structs, and a table whose keys are data (the bridge's [limits]) is a
// map.
package configfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// maxSize bounds a configuration file.
const maxSize = 1 << 20

// ReadFile reads the TOML file at path into v, then decodes v strictly
// into dst (a pointer to a struct). Values already in v (defaults, bound
// flags) take part as viper orders them.
func ReadFile(v *viper.Viper, path string, dst any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading configuration %s: %w", path, err)
	}
	defer f.Close()
	return Read(v, f, path, dst)
}

// Read is ReadFile for a configuration that is already open; name is the
// file name used in messages.
func Read(v *viper.Viper, r io.Reader, name string, dst any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return fmt.Errorf("reading configuration %s: %w", name, err)
	}
	if len(b) > maxSize {
		return fmt.Errorf("configuration %s: larger than %d bytes", name, maxSize)
	}
	v.SetConfigType("toml")
	if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("reading configuration %s: %w", name, err)
	}
	// The keys the file itself sets: a fresh viper holds nothing else.
	fv := viper.New()
	fv.SetConfigType("toml")
	if err := fv.ReadConfig(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("configuration %s: %w", name, err)
	}
	if err := CheckKeys(fv.AllSettings(), reflect.TypeOf(dst), name); err != nil {
		return err
	}
	return Decode(v, name, dst)
}

// Decode decodes v into dst, refusing keys dst does not name and values of
// the wrong type.
func Decode(v *viper.Viper, name string, dst any) error {
	if err := v.UnmarshalExact(dst, func(c *mapstructure.DecoderConfig) {
		// A string where a number or a list is expected is a mistake,
		// not something to convert (viper would split "a,b" into a
		// list).
		c.WeaklyTypedInput = false
		c.DecodeHook = nil
	}); err != nil {
		// mapstructure's message spans lines: make it one.
		var parts []string
		for _, l := range strings.Split(err.Error(), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "decoding failed due to") {
				parts = append(parts, l)
			}
		}
		return fmt.Errorf("configuration %s: %s", name, strings.Join(parts, "; "))
	}
	return nil
}

// UnknownKeyError reports keys of a configuration file that its role does
// not know.
type UnknownKeyError struct {
	File string
	Keys []UnknownKey
}

// UnknownKey is one unknown key (dotted, as in "server.max_file_payload")
// and the closest known one ("" when none is close).
type UnknownKey struct {
	Key, Closest string
}

func (e *UnknownKeyError) Error() string {
	var b strings.Builder
	for i, k := range e.Keys {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "configuration %s: unknown key %q", e.File, k.Key)
		if k.Closest != "" {
			fmt.Fprintf(&b, " (did you mean %q?)", k.Closest)
		} else {
			b.WriteString(" (no known key is close)")
		}
	}
	return b.String()
}

// CheckKeys checks every key of settings (as viper's AllSettings returns
// them: nested maps, arrays of tables as slices of maps) against the
// mapstructure tags of t, a struct type or a pointer to one.
func CheckKeys(settings map[string]any, t reflect.Type, file string) error {
	known := KnownKeys(t)
	var unknown []UnknownKey
	walk(settings, t, "", func(key string) {
		unknown = append(unknown, UnknownKey{Key: key, Closest: closest(key, known)})
	})
	if len(unknown) == 0 {
		return nil
	}
	sort.Slice(unknown, func(i, j int) bool { return unknown[i].Key < unknown[j].Key })
	return &UnknownKeyError{File: file, Keys: unknown}
}

// fields maps a struct type's keys to their field types.
func fields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("mapstructure")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "squash") {
			for k, ft := range fields(deref(f.Type)) {
				m[k] = ft
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[strings.ToLower(name)] = f.Type
	}
	return m
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func walk(settings map[string]any, t reflect.Type, prefix string, report func(string)) {
	t = deref(t)
	if t.Kind() == reflect.Map || t.Kind() == reflect.Interface {
		return // a table whose keys are data
	}
	if t.Kind() != reflect.Struct {
		return
	}
	fs := fields(t)
	for k, val := range settings {
		key := prefix + k
		ft, ok := fs[strings.ToLower(k)]
		if !ok {
			report(key)
			continue
		}
		ft = deref(ft)
		switch sub := val.(type) {
		case map[string]any:
			walk(sub, ft, key+".", report)
		case []map[string]any:
			if ft.Kind() == reflect.Slice {
				for i, e := range sub {
					walk(e, ft.Elem(), fmt.Sprintf("%s[%d].", key, i), report)
				}
			}
		case []any:
			if ft.Kind() == reflect.Slice {
				for i, e := range sub {
					if m, ok := e.(map[string]any); ok {
						walk(m, ft.Elem(), fmt.Sprintf("%s[%d].", key, i), report)
					}
				}
			}
		}
	}
}

// KnownKeys lists the dotted keys of a configuration struct type (an
// array of tables contributes "bridge.address", without an index).
func KnownKeys(t reflect.Type) []string {
	var keys []string
	var add func(t reflect.Type, prefix string)
	add = func(t reflect.Type, prefix string) {
		for k, ft := range fields(deref(t)) {
			keys = append(keys, prefix+k)
			ft = deref(ft)
			switch {
			case ft.Kind() == reflect.Struct:
				add(ft, prefix+k+".")
			case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct:
				add(ft.Elem(), prefix+k+".")
			}
		}
	}
	add(t, "")
	sort.Strings(keys)
	return keys
}

// closest returns the known key nearest to key: by edit distance over the
// whole dotted key, or over the last part alone (a known key written in
// the wrong table), or a known key with a word added ("key_file" for
// "key"). "" when nothing is within a third of the key's length.
func closest(key string, known []string) string {
	key = stripIndexes(key)
	leaf := key[strings.LastIndex(key, ".")+1:]
	best, bestD := "", -1
	for _, k := range known {
		d := distance(key, k)
		kleaf := k[strings.LastIndex(k, ".")+1:]
		if dl := distance(leaf, kleaf); dl < d {
			d = dl
		}
		if affixed(leaf, kleaf) || affixed(kleaf, leaf) {
			d = min(d, 1)
		}
		if bestD < 0 || d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD > max(2, len(leaf)/3) {
		return ""
	}
	return best
}

// affixed reports whether long is short with a word added before or
// after it ("key_file" and "key").
func affixed(long, short string) bool {
	return len(short) >= 2 && (strings.HasPrefix(long, short+"_") || strings.HasSuffix(long, "_"+short))
}

// stripIndexes turns "packages.keys[1].nmae" into "packages.keys.nmae".
func stripIndexes(key string) string {
	var b strings.Builder
	skip := false
	for _, r := range key {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
