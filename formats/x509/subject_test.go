package x509

import (
	"crypto/x509/pkix"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want pkix.Name
	}{
		{"/CN=x/O=y/OU=z/C=US", pkix.Name{CommonName: "x", Organization: []string{"y"}, OrganizationalUnit: []string{"z"}, Country: []string{"US"}}},
		{"CN=x,O=y", pkix.Name{CommonName: "x", Organization: []string{"y"}}},
		{"CN = x, O = y, C = us", pkix.Name{CommonName: "x", Organization: []string{"y"}, Country: []string{"US"}}},
		{"/CN=Example Secure Boot CA 2025/O=Example, Inc./C=DE", pkix.Name{CommonName: "Example Secure Boot CA 2025", Organization: []string{"Example, Inc."}, Country: []string{"DE"}}},
		{`CN=Example\, Inc.,O=a\+b`, pkix.Name{CommonName: "Example, Inc.", Organization: []string{"a+b"}}},
		{`/CN=a\/b/O=c`, pkix.Name{CommonName: "a/b", Organization: []string{"c"}}},
		{`CN=caf\C3\A9`, pkix.Name{CommonName: "café"}},
		{"CN=a=b", pkix.Name{CommonName: "a=b"}},
		{`CN=\ padded\ `, pkix.Name{CommonName: " padded "}},
		{"/OU=one/OU=two/CN=x", pkix.Name{CommonName: "x", OrganizationalUnit: []string{"one", "two"}}},
		{"commonName=x,organizationName=y,countryName=FR,stateOrProvinceName=Z,localityName=L,streetAddress=1 Road,postalCode=123,serialNumber=42", pkix.Name{
			CommonName: "x", Organization: []string{"y"}, Country: []string{"FR"}, Province: []string{"Z"}, Locality: []string{"L"},
			StreetAddress: []string{"1 Road"}, PostalCode: []string{"123"}, SerialNumber: "42",
		}},
		{"cn=lower,st=S,l=L,street=R,POSTALCODE=9,SERIALNUMBER=A-1", pkix.Name{CommonName: "lower", Province: []string{"S"}, Locality: []string{"L"}, StreetAddress: []string{"R"}, PostalCode: []string{"9"}, SerialNumber: "A-1"}},
	} {
		got, err := ParseSubject(tc.in)
		if err != nil {
			t.Errorf("ParseSubject(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSubject(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestParseSubjectRefusals(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", "empty subject"},
		{"   ", "empty subject"},
		{"/", "empty component"},
		{"/CN=x/", "empty component"},
		{"CN=x,,O=y", "empty component"},
		{"/CN=x/emailAddress=a@b.c", `unknown attribute "emailAddress"`},
		{"DC=example,DC=org", `unknown attribute "DC"`},
		{"2.5.4.3=x", `unknown attribute "2.5.4.3"`},
		{"UID=1", "unknown attribute"},
		{"CN", "has no '='"},
		{"/CN=x/O", "has no '='"},
		{"=x", "missing attribute name"},
		{"CN=", "empty value"},
		{"/CN=x/O= ", "empty value"},
		{"CN=x,CN=y", "CN given more than once"},
		{"serialNumber=1,serialNumber=2", "serialNumber given more than once"},
		{"C=USA", "two-letter country code"},
		{"C=1A", "two-letter country code"},
		{"CN=a+OU=b", "multi-valued RDNs"},
		{"CN=a;O=b", "unescaped ';'"},
		{`CN="quoted"`, `unescaped '"'`},
		{"CN=#04024869", "hex-encoded"},
		{`CN=x\`, "trailing backslash"},
		{"CN=tab\there", "control character"},
		{`CN=nul\00`, "control character"},
		{`CN=\FF`, "not valid UTF-8"},
		{"CN=" + strings.Repeat("a", 65), "longer than 64"},
		{"serialNumber=a_b", "PrintableString"},
	} {
		n, err := ParseSubject(tc.in)
		if err == nil {
			t.Errorf("ParseSubject(%q) = %v, want error containing %q", tc.in, n, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSubject(%q) error %q does not contain %q", tc.in, err, tc.want)
		}
	}
}

// TestParseSubjectOpenSSL checks that a parsed subject ends up in a
// certificate as openssl would print it.
func TestParseSubjectOpenSSL(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	name, err := ParseSubject(`/C=de/O=Example\, Inc./OU=Release Engineering/CN=Example Secure Boot CA`)
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t, keyTypes[1])
	ca := mustCA(t, s, Request{Kind: CA, Subject: name, Validity: time.Hour})
	p := writeCert(t, dir, "ca.pem", ca)
	out := mustOpenSSL(t, dir, "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", p)
	want := `subject=CN=Example Secure Boot CA,OU=Release Engineering,O=Example\, Inc.,C=DE`
	if strings.TrimSpace(out) != want {
		t.Errorf("openssl subject %q, want %q", strings.TrimSpace(out), want)
	}
	// The RFC 2253 form openssl prints parses back to the same name.
	back, err := ParseSubject(strings.TrimPrefix(want, "subject="))
	if err != nil || !reflect.DeepEqual(back, name) {
		t.Errorf("round trip: %#v, %v; want %#v", back, err, name)
	}
}
