package robo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tagConfig is a configuration with tag_sign enabled; rules holds the
// [[tag_sign.rules]] tables (and more instances, if any).
func tagConfig(t *testing.T, rules string) (*Config, error) {
	t.Helper()
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("p"), 0o600)
	return LoadConfig(strings.NewReader(fmt.Sprintf(`client_config = "c.toml"
[amqp]
url = "amqp://127.0.0.1/"
[tag_sign]
enabled = true
routing_keys = ["org.fedoraproject.prod.buildsys.tag"]
[[tag_sign.instances]]
name = "primary"
hub = "https://koji.example.org/kojihub"
cert = "/etc/signet/robo-koji.pem"
ca = "/etc/signet/koji-ca.pem"
%s`, strings.ReplaceAll(rules, "PASS", pass))), "t.toml")
}

const fedoraRules = `
[[tag_sign.rules]]
from = "f43-signing-pending"
to = "f43-updates-testing-pending"
key = "fedora-43"
passphrase_file = "PASS"
sigkey = "31645531"
[tag_sign.rules.sidetags]
pattern = "<to>-build-side-<seq_id>"
from = "<sidetag>-signing-pending"
to = "<sidetag>-testing-pending"
trusted_taggers = ["bodhi"]

[[tag_sign.rules]]
from = "f43-pending"
to = "f43"
key = "fedora-43"
passphrase_file = "PASS"
sigkey = "31645531"
trusted_taggers = ["releng", "bodhi"]
`

// TestTagRules: exact from tags, side tags by pattern (anchored, numbered
// from 1), unknown tags and instances.
func TestTagRules(t *testing.T) {
	c, err := tagConfig(t, fedoraRules)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := newTagRules(&c.Tag)
	if err != nil {
		t.Fatal(err)
	}
	if in := tr.instance(""); in == nil || in.Name != "primary" || in.ClientInstance != "primary" {
		t.Fatalf("the only instance: %+v", in)
	}
	if tr.instance("secondary") != nil {
		t.Fatal("an unknown instance matched")
	}
	for _, tc := range []struct {
		tag, from, to, side string
		trusted             []string
	}{
		{"f43-signing-pending", "f43-signing-pending", "f43-updates-testing-pending", "", nil},
		{"f43-pending", "f43-pending", "f43", "", []string{"releng", "bodhi"}},
		{"f43-updates-testing-pending-build-side-12-signing-pending", "f43-updates-testing-pending-build-side-12-signing-pending",
			"f43-updates-testing-pending-build-side-12-testing-pending", "f43-updates-testing-pending-build-side-12", []string{"bodhi"}},
		{"f43-updates-testing-pending-build-side-1-signing-pending", "f43-updates-testing-pending-build-side-1-signing-pending",
			"f43-updates-testing-pending-build-side-1-testing-pending", "f43-updates-testing-pending-build-side-1", []string{"bodhi"}},
	} {
		m := tr.match("primary", tc.tag)
		if m == nil || m.from != tc.from || m.to != tc.to || m.sideTag != tc.side || strings.Join(m.trusted, ",") != strings.Join(tc.trusted, ",") || m.rule.Key != "fedora-43" {
			t.Errorf("match(%q) = %+v", tc.tag, m)
		}
	}
	for _, tag := range []string{
		"f43", "f43-updates-testing-pending", "f43-signing-pending-x",
		"f43-updates-testing-pending-build-side-0-signing-pending",  // seq_id starts at 1
		"f43-updates-testing-pending-build-side-01-signing-pending", // no leading zero
		"f43-updates-testing-pending-build-side--signing-pending",
		"f43-updates-testing-pending-build-side-1x-signing-pending",
		"xf43-updates-testing-pending-build-side-1-signing-pending",  // anchored at the start
		"f43-updates-testing-pending-build-side-1-signing-pending-2", // and at the end
		"f43-updates-testing-pending-build-side-1-testing-pending",
		"f43XupdatesXtestingXpendingXbuildXsideX1XsigningXpending", // the pattern is literal
	} {
		if m := tr.match("primary", tag); m != nil {
			t.Errorf("match(%q) = %+v, want none", tag, m)
		}
	}
	if m := tr.match("secondary", "f43-pending"); m != nil {
		t.Errorf("a rule matched another instance's tag: %+v", m)
	}
}

// TestTrustedTaggers: the latest active tagging into the tag decides;
// revoked and other tags' events do not count; no event is a refusal.
func TestTrustedTaggers(t *testing.T) {
	m := &tagMatch{from: "side-1-signing-pending", trusted: []string{"bodhi"}}
	ev := func(tag, who string, ts float64, active bool) tagEvent {
		return tagEvent{Tag: tag, Creator: who, Created: ts, Active: active}
	}
	for _, tc := range []struct {
		name   string
		events []tagEvent
		ok     bool
	}{
		{"trusted", []tagEvent{ev("side-1-signing-pending", "bodhi", 10, true)}, true},
		{"untrusted", []tagEvent{ev("side-1-signing-pending", "mallory", 10, true)}, false},
		{"none", nil, false},
		{"only another tag", []tagEvent{ev("f43", "bodhi", 10, true)}, false},
		{"only revoked", []tagEvent{ev("side-1-signing-pending", "bodhi", 10, false)}, false},
		{"latest untrusted", []tagEvent{ev("side-1-signing-pending", "bodhi", 10, true), ev("side-1-signing-pending", "mallory", 20, true)}, false},
		{"latest trusted", []tagEvent{ev("side-1-signing-pending", "mallory", 10, true), ev("side-1-signing-pending", "bodhi", 20, true)}, true},
		{"untrusted revoked", []tagEvent{ev("side-1-signing-pending", "mallory", 30, false), ev("side-1-signing-pending", "bodhi", 20, true)}, true},
	} {
		err := m.checkTagger(tc.events)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if err := (&tagMatch{from: "f43-signing-pending"}).checkTagger(nil); err != nil {
		t.Errorf("a rule without trusted taggers refused: %v", err)
	}
}

// TestTagConfigStrict: what a rule must hold, and unknown keys.
func TestTagConfigStrict(t *testing.T) {
	rule := func(extra string) string {
		return "[[tag_sign.rules]]\nfrom = \"a\"\nto = \"b\"\nkey = \"k\"\npassphrase_file = \"PASS\"\n" + extra
	}
	if _, err := tagConfig(t, rule("sigkey = \"0a1b2c3d\"\n")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ rules, want string }{
		{"", "no rules"},
		{rule(""), "sigkey"},
		{rule("sigkey = \"0A1B2C3D\"\n"), "sigkey"},
		{rule("sigkey = \"0a1b2c3d\"\nsigkye = \"x\"\n"), "sigkye"},
		{rule("sigkey = \"0a1b2c3d\"\nfile_signing_key = \"ima\"\n"), "go together"},
		{rule("sigkey = \"0a1b2c3d\"\ninstance = \"other\"\n"), "no instance"},
		{rule("sigkey = \"0a1b2c3d\"\n") + rule("sigkey = \"0a1b2c3d\"\n"), "two rules"},
		{rule("sigkey = \"0a1b2c3d\"\ntrusted_taggers = [\"a b\"]\n"), "trusted tagger"},
		{rule("sigkey = \"0a1b2c3d\"\n[tag_sign.rules.sidetags]\npattern = \"<to>-side-<seq_id>\"\nfrom = \"<sidetag>-signing\"\nto = \"<sidetag>-done\"\n"), "trusted_taggers"},
		{rule("sigkey = \"0a1b2c3d\"\n[tag_sign.rules.sidetags]\npattern = \"<to>-side\"\nfrom = \"<sidetag>-signing\"\nto = \"<sidetag>-done\"\ntrusted_taggers = [\"bodhi\"]\n"), "<seq_id>"},
		{rule("sigkey = \"0a1b2c3d\"\n[tag_sign.rules.sidetags]\npattern = \"<to>-side-<seq_id>\"\nfrom = \"signing\"\nto = \"<sidetag>-done\"\ntrusted_taggers = [\"bodhi\"]\n"), "<sidetag>"},
		{rule("sigkey = \"0a1b2c3d\"\n[tag_sign.rules.sidetags]\npattern = \"<to> side <seq_id>\"\nfrom = \"<sidetag>-signing\"\nto = \"<sidetag>-done\"\ntrusted_taggers = [\"bodhi\"]\n"), "not a Koji tag name"},
	} {
		_, err := tagConfig(t, tc.rules)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error about %s", tc.rules, err, tc.want)
		}
	}
}

// TestParseTagMessage: the fields needed, and what a name, version,
// release, tag or build id may hold.
func TestParseTagMessage(t *testing.T) {
	good := map[string]any{"build_id": 799208, "name": "python-fmn-rules", "version": "0.9.1", "release": "1.el7",
		"tag": "epel7-infra", "tag_id": 374, "instance": "primary", "user": "puiterwijk", "owner": "sayanchowdhury"}
	b, _ := json.Marshal(good)
	m, err := parseTagMessage(b)
	if err != nil || m.BuildID != 799208 || m.nvr() != "python-fmn-rules-0.9.1-1.el7" || m.Tag != "epel7-infra" || m.Instance != "primary" {
		t.Fatalf("%+v, %v", m, err)
	}
	with := func(k string, v any) []byte {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		b, _ := json.Marshal(c)
		return b
	}
	if m, err := parseTagMessage(with("instance", nil)); err != nil || m.Instance != "" {
		t.Fatalf("without instance: %+v, %v", m, err)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"not JSON", []byte("build")},
		{"an array", []byte("[]")},
		{"null", []byte("null")},
		{"no build_id", with("build_id", nil)},
		{"build_id 0", with("build_id", 0)},
		{"negative build_id", with("build_id", -4)},
		{"fractional build_id", with("build_id", 1.5)},
		{"string build_id", with("build_id", "799208")},
		{"no name", with("name", nil)},
		{"name with a slash", with("name", "../etc")},
		{"name with a space", with("name", "a b")},
		{"name starting with a dot", with("name", ".hidden")},
		{"version with a dash", with("version", "1-2")},
		{"release with a dash", with("release", "1-2")},
		{"no release", with("release", "")},
		{"non-ASCII", with("version", "1.é")},
		{"long name", with("name", strings.Repeat("a", maxNVRPart+1))},
		{"no tag", with("tag", nil)},
		{"tag with a space", with("tag", "f43 pending")},
		{"instance with a slash", with("instance", "a/b")},
		{"name not a string", with("name", 5)},
	} {
		if _, err := parseTagMessage(tc.body); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want malformed", tc.name, err)
		}
	}
}

// TestParseOSTreeMessage: ref and commit checks; a null commit is
// nothing to sign.
func TestParseOSTreeMessage(t *testing.T) {
	c := strings.Repeat("ab", 32)
	m, err := parseOSTreeMessage([]byte(`{"ref": "fedora/43/x86_64/silverblue", "commitid": "` + c + `", "arch": "x86_64", "variant": "Silverblue", "location": "https://x/", "compose_id": "Fedora-43"}`))
	if err != nil || m.Ref != "fedora/43/x86_64/silverblue" || m.CommitID == nil || *m.CommitID != c {
		t.Fatalf("%+v, %v", m, err)
	}
	if m, err := parseOSTreeMessage([]byte(`{"ref": "a/b", "commitid": null}`)); err != nil || m.CommitID != nil {
		t.Fatalf("null commit: %+v, %v", m, err)
	}
	for _, body := range []string{
		`{"ref": "../a", "commitid": "` + c + `"}`,
		`{"ref": "a/../b", "commitid": "` + c + `"}`,
		`{"ref": "/a", "commitid": "` + c + `"}`,
		`{"ref": "a//b", "commitid": "` + c + `"}`,
		`{"ref": "", "commitid": "` + c + `"}`,
		`{"ref": "a", "commitid": "` + strings.ToUpper(c) + `"}`,
		`{"ref": "a", "commitid": "` + c[:62] + `"}`,
		`{"ref": "a", "commitid": "../../../../etc/passwd` + c[:42] + `"}`,
		`{"ref": "a", "commitid": 5}`,
		`[1]`,
	} {
		if _, err := parseOSTreeMessage([]byte(body)); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want malformed", body, err)
		}
	}
}

// TestXMLGuard: only bodies that begin with the XML declaration, exactly,
// and are well formed.
func TestXMLGuard(t *testing.T) {
	for _, ok := range []string{
		`<?xml version="1.0" encoding="UTF-8"?><repomd/>`,
		"<?xml version=\"1.0\" ?>\n<a><b/></a>\n",
	} {
		if err := checkXML([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{
		`<repomd/>`,
		` <?xml version="1.0" encoding="UTF-8"?><repomd/>`,
		"\ufeff<?xml version=\"1.0\" encoding=\"UTF-8\"?><repomd/>",
		`<?xml version='1.0' encoding="UTF-8"?><repomd/>`,
		`<?xml version="1.1" encoding="UTF-8"?><repomd/>`,
		`<?xml version="1.0"?><repomd/>`,
		`<?XML version="1.0" encoding="UTF-8"?><repomd/>`,
		`<?xml version="1.0" encoding="UTF-8"?><a/><b/>`,
		`<?xml version="1.0" encoding="UTF-8"?><a>`,
		`<?xml version="1.0" encoding="UTF-8"?>`,
		`-----BEGIN PGP SIGNED MESSAGE-----`,
		"",
	} {
		if err := checkXML([]byte(bad)); !errors.Is(err, errMalformed) {
			t.Errorf("%q: %v, want malformed", bad, err)
		}
	}
}

// FuzzTagMessage: any body is refused as malformed or gives a message
// whose fields a Koji name check and the NEVRA need.
func FuzzTagMessage(f *testing.F) {
	f.Add([]byte(`{"build_id": 799208, "name": "python-fmn-rules", "version": "0.9.1", "release": "1.el7", "tag": "epel7-infra", "instance": "primary"}`))
	f.Add([]byte(`{"build_id": 1, "name": "a", "version": "1", "release": "1", "tag": "t"}`))
	f.Add([]byte(`{"build_id": 1e3, "name": "a", "version": "1", "release": "1", "tag": "t", "owner": null}`))
	f.Add([]byte(`{"build_id": 1, "name": "a", "version": "1", "release": "1", "tag": "t", "build_id": 2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseTagMessage(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("an error that is not malformed: %v", err)
			}
			return
		}
		if m.BuildID <= 0 || !kojiName.MatchString(m.Tag) || strings.Count(m.Version+m.Release, "-") != 0 ||
			strings.ContainsAny(m.nvr(), "/ \x00\n") || len(m.Name) > maxNVRPart {
			t.Fatalf("accepted %+v", m)
		}
	})
}

// FuzzOSTreeMessage: any body is refused as malformed or names a ref
// that stays inside refs/heads and a commit that is a SHA-256.
func FuzzOSTreeMessage(f *testing.F) {
	c := strings.Repeat("0f", 32)
	f.Add([]byte(`{"ref": "fedora/43/x86_64/silverblue", "commitid": "` + c + `", "arch": "x86_64"}`))
	f.Add([]byte(`{"ref": "a", "commitid": null}`))
	f.Add([]byte(`{"ref": "a/../../b", "commitid": "` + c + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseOSTreeMessage(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("an error that is not malformed: %v", err)
			}
			return
		}
		if !filepath.IsLocal(m.Ref) || filepath.Clean(m.Ref) != m.Ref || (m.CommitID != nil && !isSHA256Hex(*m.CommitID)) {
			t.Fatalf("accepted %+v", m)
		}
	})
}
