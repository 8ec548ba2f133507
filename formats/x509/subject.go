package x509

import (
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParseSubject parses a distinguished name in one of two forms:
//
//	/CN=Example Secure Boot CA/O=Example/OU=Release/C=US   (OpenSSL -subj)
//	CN=Example Secure Boot CA,O=Example,OU=Release,C=US     (RFC 4514-like)
//
// A string starting with '/' is the OpenSSL form, anything else the RFC 4514
// form. Attribute names are case-insensitive: CN (commonName), O
// (organizationName), OU (organizationalUnitName), C (countryName), ST
// (stateOrProvinceName), L (localityName), STREET (streetAddress),
// postalCode and serialNumber. Other attributes, such as emailAddress or DC,
// are refused.
//
// A backslash escapes the next character in both forms ("\/" or "\,");
// the RFC 4514 form also takes "\XX" hex pairs. White space around names
// and values is ignored unless escaped. In the RFC 4514 form an unescaped
// '+' (multi-valued RDN), ';', '"', '<' or '>', or a value starting with
// '#', is refused. CN and serialNumber may appear once; the other
// attributes may repeat. C must be two letters and is upper-cased. Values
// must be valid UTF-8 without control characters and within the RFC 5280
// length bounds.
//
// The order of attributes is not kept: the result is a pkix.Name, which
// encodes them in a fixed order (C, ST, L, STREET, postalCode, O, OU, CN,
// serialNumber).
func ParseSubject(s string) (pkix.Name, error) {
	var name pkix.Name
	if strings.TrimSpace(s) == "" {
		return name, errors.New("x509: empty subject")
	}
	// Only leading white space is cut here: a trailing space may be escaped.
	// Each component is trimmed of unescaped white space later.
	trimmed := strings.TrimLeft(s, " \t\r\n")
	slash := strings.HasPrefix(trimmed, "/")
	var toks []token
	var err error
	if slash {
		toks, err = lexName(trimmed[1:], false)
	} else {
		toks, err = lexName(trimmed, true)
	}
	if err != nil {
		return name, fmt.Errorf("x509: subject %q: %w", s, err)
	}
	sep := byte(',')
	if slash {
		sep = '/'
	}
	seen := map[string]bool{}
	for i, comp := range splitTokens(toks, sep) {
		if err := addAttribute(&name, comp, !slash, seen); err != nil {
			return pkix.Name{}, fmt.Errorf("x509: subject %q, component %d: %w", s, i+1, err)
		}
	}
	return name, nil
}

// token is one byte of a name string after unescaping.
type token struct {
	b   byte
	esc bool
}

func lexName(s string, hexPairs bool) ([]token, error) {
	toks := make([]token, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			toks = append(toks, token{b: c})
			continue
		}
		if i+1 >= len(s) {
			return nil, errors.New("trailing backslash")
		}
		if hexPairs && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			toks = append(toks, token{b: unhex(s[i+1])<<4 | unhex(s[i+2]), esc: true})
			i += 2
			continue
		}
		toks = append(toks, token{b: s[i+1], esc: true})
		i++
	}
	return toks, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func splitTokens(toks []token, sep byte) [][]token {
	var parts [][]token
	start := 0
	for i, t := range toks {
		if t.b == sep && !t.esc {
			parts = append(parts, toks[start:i])
			start = i + 1
		}
	}
	return append(parts, toks[start:])
}

// trimTokens removes unescaped white space at both ends.
func trimTokens(toks []token) []token {
	for len(toks) > 0 && !toks[0].esc && (toks[0].b == ' ' || toks[0].b == '\t') {
		toks = toks[1:]
	}
	for len(toks) > 0 && !toks[len(toks)-1].esc && (toks[len(toks)-1].b == ' ' || toks[len(toks)-1].b == '\t') {
		toks = toks[:len(toks)-1]
	}
	return toks
}

func tokenString(toks []token) string {
	b := make([]byte, len(toks))
	for i, t := range toks {
		b[i] = t.b
	}
	return string(b)
}

type attribute struct {
	short    string
	maxRunes int // RFC 5280 upper bound; 0 for none
	once     bool
	add      func(n *pkix.Name, v string)
}

var attributes = map[string]*attribute{}

func init() {
	for _, a := range []struct {
		names []string
		attr  attribute
	}{
		{[]string{"cn", "commonname"}, attribute{"CN", 64, true, func(n *pkix.Name, v string) { n.CommonName = v }}},
		{[]string{"o", "organizationname"}, attribute{"O", 64, false, func(n *pkix.Name, v string) { n.Organization = append(n.Organization, v) }}},
		{[]string{"ou", "organizationalunitname"}, attribute{"OU", 64, false, func(n *pkix.Name, v string) { n.OrganizationalUnit = append(n.OrganizationalUnit, v) }}},
		{[]string{"c", "countryname"}, attribute{"C", 0, false, func(n *pkix.Name, v string) { n.Country = append(n.Country, v) }}},
		{[]string{"st", "stateorprovincename"}, attribute{"ST", 128, false, func(n *pkix.Name, v string) { n.Province = append(n.Province, v) }}},
		{[]string{"l", "localityname"}, attribute{"L", 128, false, func(n *pkix.Name, v string) { n.Locality = append(n.Locality, v) }}},
		{[]string{"street", "streetaddress"}, attribute{"STREET", 0, false, func(n *pkix.Name, v string) { n.StreetAddress = append(n.StreetAddress, v) }}},
		{[]string{"postalcode"}, attribute{"postalCode", 0, false, func(n *pkix.Name, v string) { n.PostalCode = append(n.PostalCode, v) }}},
		{[]string{"serialnumber"}, attribute{"serialNumber", 64, true, func(n *pkix.Name, v string) { n.SerialNumber = v }}},
	} {
		attr := a.attr
		for _, n := range a.names {
			attributes[n] = &attr
		}
	}
}

const supportedAttributes = "CN, O, OU, C, ST, L, STREET, postalCode, serialNumber"

func addAttribute(name *pkix.Name, comp []token, rfc bool, seen map[string]bool) error {
	comp = trimTokens(comp)
	if len(comp) == 0 {
		return errors.New("empty component")
	}
	eq := -1
	for i, t := range comp {
		if t.b == '=' && !t.esc {
			eq = i
			break
		}
	}
	if eq < 0 {
		return fmt.Errorf("%q has no '='", tokenString(comp))
	}
	key := tokenString(trimTokens(comp[:eq]))
	valToks := trimTokens(comp[eq+1:])
	if key == "" {
		return errors.New("missing attribute name before '='")
	}
	attr, ok := attributes[strings.ToLower(key)]
	if !ok {
		return fmt.Errorf("unknown attribute %q (supported: %s)", key, supportedAttributes)
	}
	if rfc {
		for i, t := range valToks {
			if t.esc {
				continue
			}
			switch t.b {
			case '+':
				return fmt.Errorf("%s: unescaped '+' (multi-valued RDNs are not supported; write \\+ for a literal plus)", attr.short)
			case ';', '"', '<', '>':
				return fmt.Errorf("%s: unescaped %q; escape it with a backslash", attr.short, t.b)
			case '#':
				if i == 0 {
					return fmt.Errorf("%s: hex-encoded (#) values are not supported", attr.short)
				}
			}
		}
	}
	val := tokenString(valToks)
	if val == "" {
		return fmt.Errorf("%s: empty value", attr.short)
	}
	if !utf8.ValidString(val) {
		return fmt.Errorf("%s: value is not valid UTF-8", attr.short)
	}
	for _, r := range val {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%s: value contains control character %U", attr.short, r)
		}
	}
	if attr.maxRunes > 0 && utf8.RuneCountInString(val) > attr.maxRunes {
		return fmt.Errorf("%s: value longer than %d characters", attr.short, attr.maxRunes)
	}
	switch attr.short {
	case "C":
		if len(val) != 2 || !isLetter(val[0]) || !isLetter(val[1]) {
			//lint:ignore ST1005 C is the attribute's name
			return fmt.Errorf("C: %q is not a two-letter country code", val)
		}
		val = strings.ToUpper(val)
	case "serialNumber":
		for _, r := range val {
			if !isPrintableStringChar(r) {
				return fmt.Errorf("serialNumber: %q is not allowed in a PrintableString", r)
			}
		}
	}
	if attr.once && seen[attr.short] {
		return fmt.Errorf("%s given more than once", attr.short)
	}
	seen[attr.short] = true
	attr.add(name, val)
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isPrintableStringChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune(" '()+,-./:=?", r)
}
