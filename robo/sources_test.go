package robo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func mustPolicy(t testing.TB, list ...string) sourcePolicy {
	t.Helper()
	p, err := newSourcePolicy(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSourcePolicy: every bypass of the prefix comparison the review found,
// and their relatives, is refused; ordinary URLs pass.
func TestSourcePolicy(t *testing.T) {
	p := mustPolicy(t, "https://builds.example.org/pub/", "file:///srv/builds/", "http://127.0.0.1:8080/a")
	for _, u := range []string{
		"https://builds.example.org/pub/x.rpm",
		"https://BUILDS.Example.org:443/pub/x.rpm",
		"HTTPS://builds.example.org/pub/sub/dir/x.rpm",
		"https://builds.example.org/pub/x%20y.rpm",
		"file:///srv/builds/x.rpm",
		"file://localhost/srv/builds/f43/x.rpm",
		"http://127.0.0.1:8080/a/b",
	} {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.check(pu); err != nil {
			t.Errorf("%s: refused: %v", u, err)
		}
	}
	for _, u := range []string{
		// The review's findings.
		"file:///srv/builds/../../home/x.rpm",
		"file:///srv/builds/%2e%2e/%2e%2e/home/x.rpm",
		"file:///srv/builds/%2E%2E/x.rpm",
		"https://builds.example.org@evil.example/pub/x.rpm",
		"https://builds.example.org.evil.example/pub/x.rpm",
		// Their relatives.
		"https://builds.example.org/pub/../admin/x",
		"https://builds.example.org/pub/%2e%2e/admin/x",
		"https://builds.example.org/pub/%252e%252e/admin/x",
		"https://builds.example.org/pub/..%2fadmin/x",
		"https://builds.example.org/pub/%2fadmin",
		"https://builds.example.org/pub/..\\admin\\x",
		"https://builds.example.org/pub/./x",
		"https://builds.example.org/pub//x",
		"https://builds.example.org/pub/x%00.rpm",
		"https://user:pw@builds.example.org/pub/x.rpm",
		"https://builds.example.org:8443/pub/x.rpm",
		"https://builds.example.org./pub/x.rpm",
		"https://evil.example/pub/x.rpm",
		"https://builds.example.org/public/x.rpm",
		"https://builds.example.org/pub",
		"https://builds.example.org/pub/",
		"https://builds.example.org/pub/x.rpm?download=1",
		"https://builds.example.org/pub/x.rpm#frag",
		"http://builds.example.org/pub/x.rpm",
		"ftp://builds.example.org/pub/x.rpm",
		"file:///srv/builds2/x.rpm",
		"file:///srv/x.rpm",
		"file://evil.example/srv/builds/x.rpm",
		"file:srv/builds/x.rpm",
		"http://127.0.0.1:80801/a/b",
		"http://127.0.0.10:8080/a/b",
		"http://127.0.0.1:8080/ab",
	} {
		pu, err := url.Parse(u)
		if err != nil {
			continue // not even a URL: refused earlier
		}
		if err := p.check(pu); !errors.Is(err, errNotAllowed) {
			t.Errorf("%s: allowed (%v)", u, err)
		}
	}
}

func TestAllowedSourcesConfig(t *testing.T) {
	for _, bad := range []string{
		"https://user@builds.example.org/",
		"https://builds.example.org/pub/../",
		"https://builds.example.org/?x",
		"ftp://builds.example.org/",
		"https:///pub/",
		"file://host/srv/",
		"https://builds.example.org//pub/",
	} {
		if _, err := newSourcePolicy([]string{bad}); err == nil {
			t.Errorf("allowed_sources entry %q accepted", bad)
		}
	}
	base := `client_config = "c.toml"
[amqp]
url = "amqp://127.0.0.1/"
[artifacts_sign]
enabled = true
routing_keys = ["a"]
key = "k"
passphrase_file = "p"
`
	if _, err := LoadConfig(strings.NewReader(base), "robo.toml"); err == nil || !strings.Contains(err.Error(), "needs allowed_sources") {
		t.Fatalf("an empty allowed_sources was accepted: %v", err)
	}
	if _, err := LoadConfig(strings.NewReader(base+"allowed_sources = []\n"), "robo.toml"); err == nil || !strings.Contains(err.Error(), "needs allowed_sources") {
		t.Fatalf("an empty allowed_sources was accepted: %v", err)
	}
	if _, err := LoadConfig(strings.NewReader(base+`allowed_sources = ["https://a@b/"]`+"\n"), "robo.toml"); err == nil || !strings.Contains(err.Error(), "user information") {
		t.Fatalf("allowed_sources with user information: %v", err)
	}
	if _, err := LoadConfig(strings.NewReader(base+`allowed_sources = ["file:///srv/builds/"]`+"\n"), "robo.toml"); err != nil {
		t.Fatal(err)
	}
}

// testRobo is a Robo enough for fetch and store: no broker, no signer.
func testRobo(t *testing.T) *Robo {
	return &Robo{cfg: &Config{WorkDir: t.TempDir()}, http: httpClient()}
}

func ref(t *testing.T, u string, data []byte) *artifactRef {
	t.Helper()
	sum := sha256.Sum256(data)
	a := &artifactRef{File: u, Checksum: "sha256:" + hex.EncodeToString(sum[:])}
	if err := a.check(); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSymlinks: a link inside an allowed directory that leads outside it
// is refused (file or directory), a link that stays inside is followed,
// and the signature goes beside the file the link leads to.
func TestSymlinks(t *testing.T) {
	root := t.TempDir()
	allowed, outside := filepath.Join(root, "builds"), filepath.Join(root, "home")
	for _, d := range []string{allowed, outside, filepath.Join(allowed, "real")} {
		os.MkdirAll(d, 0o755)
	}
	secret := []byte("outside the allowed directory")
	os.WriteFile(filepath.Join(outside, "secret"), secret, 0o644)
	inside := []byte("an artifact")
	os.WriteFile(filepath.Join(allowed, "real", "a.img"), inside, 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(allowed, "link"))
	os.Symlink(outside, filepath.Join(allowed, "dirlink"))
	os.Symlink("real/a.img", filepath.Join(allowed, "good-link"))
	os.Symlink(filepath.Join(outside, "nothing"), filepath.Join(allowed, "dangling"))
	// The allowed directory may itself be reached through a link.
	os.Symlink(allowed, filepath.Join(root, "builds-link"))
	kc := &KindConfig{sources: mustPolicy(t, "file://"+filepath.Join(root, "builds-link")+"/")}
	r := testRobo(t)
	viaLink := "file://" + filepath.Join(root, "builds-link")

	for _, u := range []string{viaLink + "/link", viaLink + "/dirlink/secret", viaLink + "/dangling"} {
		_, err := r.fetch(t.Context(), kc, ref(t, u, secret), false)
		if !isFailure(err) || !strings.Contains(err.Error(), "not an allowed source") {
			t.Errorf("%s: %v, want a failure: not an allowed source", u, err)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "secret.sig")); err == nil {
		t.Fatal("a signature was written outside")
	}
	a := ref(t, viaLink+"/good-link", inside)
	s, err := r.fetch(t.Context(), kc, a, false)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	want, _ := filepath.EvalSymlinks(filepath.Join(allowed, "real", "a.img"))
	if got := sigTarget(kc, a); got.path != want+".sig" {
		t.Fatalf("signature target %q, want %q", got.path, want+".sig")
	}
	// A missing file is a failure that says so.
	if _, err := r.fetch(t.Context(), kc, ref(t, viaLink+"/missing", inside), false); !isFailure(err) || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
	// A FIFO does not block the worker.
	fifo := filepath.Join(allowed, "fifo")
	if err := mkfifo(fifo); err == nil {
		if _, err := r.fetch(t.Context(), kc, ref(t, viaLink+"/fifo", inside), false); !isFailure(err) {
			t.Fatalf("fifo: %v", err)
		}
	}
}

// TestRedirects: a redirect is followed only to an allowed URL; a PUT
// follows none.
func TestRedirects(t *testing.T) {
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		evilHits.Add(1)
		w.Write([]byte("evil"))
	}))
	defer evil.Close()
	data := []byte("the artifact")
	var puts atomic.Int32
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.Method == http.MethodPut:
			puts.Add(1)
			http.Redirect(w, req, evil.URL+"/pub/x.sig", http.StatusTemporaryRedirect)
		case req.URL.Path == "/pub/x":
			w.Write(data)
		case req.URL.Path == "/pub/away":
			http.Redirect(w, req, evil.URL+"/pub/x", http.StatusFound)
		case req.URL.Path == "/pub/up":
			http.Redirect(w, req, "/admin/x", http.StatusFound)
		case req.URL.Path == "/pub/inside":
			http.Redirect(w, req, "/pub/x", http.StatusMovedPermanently)
		case req.URL.Path == "/pub/loop":
			http.Redirect(w, req, "/pub/loop", http.StatusFound)
		default:
			http.NotFound(w, req)
		}
	}))
	defer good.Close()
	kc := &KindConfig{sources: mustPolicy(t, good.URL+"/pub/")}
	r := testRobo(t)

	for _, p := range []string{"/pub/away", "/pub/up"} {
		_, err := r.fetch(t.Context(), kc, ref(t, good.URL+p, data), false)
		if !isFailure(err) || !strings.Contains(err.Error(), "not an allowed source") {
			t.Errorf("%s: %v, want a failure: not an allowed source", p, err)
		}
	}
	if _, err := r.fetch(t.Context(), kc, ref(t, good.URL+"/pub/loop", data), false); err == nil {
		t.Error("a redirect loop was followed to the end")
	}
	s, err := r.fetch(t.Context(), kc, ref(t, good.URL+"/pub/inside", data), false)
	if err != nil {
		t.Fatalf("a redirect inside the allowed directory: %v", err)
	}
	s.Close()
	if err := r.store(context.Background(), target{url: good.URL + "/pub/x.sig"}, []byte("sig")); err == nil {
		t.Error("a PUT answered with a redirect succeeded")
	}
	if n := evilHits.Load(); n != 0 || puts.Load() != 1 {
		t.Fatalf("the disallowed server got %d requests (want 0); the allowed one %d PUTs (want 1)", n, puts.Load())
	}
}

// TestChecksumMismatchEchoesNoDigest: the failure message names the
// expected digest, never the file's.
func TestChecksumMismatchEchoesNoDigest(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("hunter2\n")
	p := filepath.Join(dir, "passphrase")
	os.WriteFile(p, secret, 0o644)
	kc := &KindConfig{sources: mustPolicy(t, "file://"+dir+"/")}
	a := ref(t, "file://"+p, []byte("something else"))
	_, err := testRobo(t).fetch(t.Context(), kc, a, false)
	real := sha256.Sum256(secret)
	if !isFailure(err) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("err = %v, want a checksum mismatch", err)
	}
	msg := strings.ToLower(err.Error())
	for _, leak := range []string{hex.EncodeToString(real[:]), hex.EncodeToString(real[:])[:16]} {
		if strings.Contains(msg, leak) {
			t.Fatalf("the failure message %q holds the file's digest", err)
		}
	}
}

// FuzzSourcePolicy: whatever the URL, the check never panics, and what it
// allows is a clean path strictly inside an entry, on its exact host.
func FuzzSourcePolicy(f *testing.F) {
	for _, s := range []string{
		"https://builds.example.org/pub/x.rpm", "file:///srv/builds/../../home/x.rpm",
		"file:///srv/builds/%2e%2e/x", "https://builds.example.org@evil.example/pub/x",
		"https://builds.example.org.evil.example/pub/x", "https://[::1]:443/pub/x", "file://localhost/srv/builds/a/b",
	} {
		f.Add(s)
	}
	p := mustPolicy(f, "https://builds.example.org/pub/", "file:///srv/builds/")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		if p.check(u) != nil {
			return
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%q allowed with user, query or fragment", s)
		}
		if path.Clean(u.Path) != u.Path || strings.Contains(u.Path, "..") && strings.Contains("/"+u.Path+"/", "/../") {
			t.Fatalf("%q allowed with an unclean path %q", s, u.Path)
		}
		host := strings.ToLower(u.Hostname())
		switch strings.ToLower(u.Scheme) {
		case "https":
			if host != "builds.example.org" || (u.Port() != "" && u.Port() != "443") || !strings.HasPrefix(u.Path, "/pub/") {
				t.Fatalf("%q allowed", s)
			}
		case "file":
			if (host != "" && host != "localhost") || !strings.HasPrefix(u.Path, "/srv/builds/") {
				t.Fatalf("%q allowed", s)
			}
		default:
			t.Fatalf("%q allowed", s)
		}
	})
}

// FuzzMessage: whatever a publisher sends (routing key, content type,
// schema header, body), parsing the envelope and decoding an
// artifacts-sign or packages request never panics, and every artifact
// that passes has a file, http or https URL and a 64-digit SHA-256.
func FuzzMessage(f *testing.F) {
	f.Add("org.test.artifacts-sign", "application/json", "base.message", []byte(`{"artifacts": [{"file": "file:///srv/builds/x", "checksum": "sha256:`+strings.Repeat("ab", 32)+`"}]}`))
	f.Add("org.test.packages", "application/json; charset=utf-8", "base.message", []byte(`{"key": "k", "destination": "f43", "rpms": [{"file": "https://h/p/x.rpm", "checksum": "sha256:`+strings.Repeat("0", 64)+`"}]}`))
	f.Add("org.test.xml", "application/xml", "base.message", []byte(`<a/>`))
	f.Add("", "", "", []byte(`[null]`))
	r := &Robo{kinds: []*kind{
		{name: KindArtifacts, cfg: &KindConfig{RoutingKeys: []string{"org.test.artifacts-sign"}, Schemas: []string{"base.message"}}, contentTypes: []string{"application/json"}},
		{name: KindPackages, cfg: &KindConfig{RoutingKeys: []string{"org.*.packages"}, Schemas: []string{"base.message"}}, contentTypes: []string{"application/json"}},
		{name: KindXML, cfg: &KindConfig{RoutingKeys: []string{"#.xml"}, Schemas: []string{"base.message"}}, contentTypes: []string{"application/xml"}},
	}}
	f.Fuzz(func(t *testing.T, key, ct, schema string, body []byte) {
		d := amqp.Delivery{MessageId: "id", RoutingKey: key, ContentType: ct, Body: body,
			Headers: amqp.Table{hdrSchema: schema, hdrAttempt: int32(len(body))}}
		m, err := r.parse(d)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("parse error %v is not malformed", err)
			}
			return
		}
		var refs []*artifactRef
		switch m.Kind {
		case KindArtifacts:
			var req struct {
				Artifacts []*artifactRef `json:"artifacts"`
			}
			if _, err := decodeObject(m.Body, &req); err != nil {
				return
			}
			refs = req.Artifacts
		case KindPackages:
			var req packagesRequest
			if _, err := decodeObject(m.Body, &req); err != nil {
				return
			}
			refs = append(req.RPMs, req.Images...)
		case KindXML:
			wellFormedXML(m.Body)
			return
		}
		for _, a := range refs {
			if a == nil || a.check() != nil {
				continue
			}
			if s := a.url.Scheme; (s != "file" && s != "http" && s != "https") || len(a.sha256) != 64 || a.name() == "" {
				t.Fatalf("artifact %+v passed its check", a)
			}
			withStatus(m.Body, false, "x")
		}
	})
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o600) }
