package bridge

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/koji"
	"github.com/signet-project/signet/protocol"
)

// TestSigHeaderKey reads the key id of a real signature header as Koji
// names it: Fedora's zlib package is signed by fdb19c98.
func TestSigHeaderKey(t *testing.T) {
	zlib, err := os.ReadFile(artifacts.FedoraZlib(t))
	if err != nil {
		t.Fatal(err)
	}
	prefix, hdr, err := readSigHeader(bytes.NewReader(zlib), uint64(len(zlib)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(zlib, prefix) || !bytes.HasPrefix(zlib[96:], hdr) {
		t.Fatal("readSigHeader did not return the file's first bytes")
	}
	if k, err := sigHeaderKey(hdr); err != nil || k != "fdb19c98" {
		t.Fatalf("sigHeaderKey = %q, %v; want fdb19c98", k, err)
	}
	// The header alone (head mode's reply) reads the same.
	if _, hdr2, err := readSigHeader(bytes.NewReader(hdr), uint64(len(hdr))); err != nil || !bytes.Equal(hdr, hdr2) {
		t.Fatalf("header alone: %v", err)
	}
	unsigned, err := os.ReadFile(filepath.Join(artifacts.RPMUtilsTestdata(t), "simple-1.0.1-1.i386.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	_, hdr, err = readSigHeader(bytes.NewReader(unsigned), uint64(len(unsigned)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sigHeaderKey(hdr); err == nil {
		t.Fatal("an unsigned header gave a key")
	}
	// Truncated results are refused, not over-read.
	if _, _, err := readSigHeader(bytes.NewReader(zlib[:200]), 200); err == nil {
		t.Fatal("a truncated package gave a signature header")
	}
}

// fakeKoji answers getRPM and getBuild with canned XML-RPC and serves
// files; what it answers is set per test case.
type fakeKoji struct {
	rpmXML   string // getRPM's <value> content
	files    map[string][]byte
	redirect string // where /packages/ redirects to, if set
}

func (f *fakeKoji) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		m := regexp.MustCompile(`<methodName>(\w+)</methodName>`).FindSubmatch(body)
		v := "<nil/>"
		switch string(m[1]) {
		case "getRPM":
			v = f.rpmXML
		case "getBuild":
			v = `<struct><member><name>id</name><value><int>5</int></value></member><member><name>name</name><value><string>zlib</string></value></member>` +
				`<member><name>package_name</name><value><string>zlib</string></value></member><member><name>version</name><value><string>1.2.8</string></value></member>` +
				`<member><name>release</name><value><string>10.fc24</string></value></member><member><name>nvr</name><value><string>zlib-1.2.8-10.fc24</string></value></member>` +
				`<member><name>epoch</name><value><nil/></value></member><member><name>state</name><value><int>1</int></value></member><member><name>volume_name</name><value><string>DEFAULT</string></value></member></struct>`
		}
		fmt.Fprintf(w, "<?xml version='1.0'?><methodResponse><params><param><value>%s</value></param></params></methodResponse>", v)
		return
	}
	if f.redirect != "" {
		http.Redirect(w, r, f.redirect+r.URL.Path, http.StatusFound)
		return
	}
	b, ok := f.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

func rpmXML(epoch string, size int, md5hex string) string {
	return `<struct><member><name>id</name><value><int>7</int></value></member><member><name>build_id</name><value><int>5</int></value></member>` +
		`<member><name>name</name><value><string>zlib</string></value></member><member><name>epoch</name><value>` + epoch + `</value></member>` +
		`<member><name>version</name><value><string>1.2.8</string></value></member><member><name>release</name><value><string>10.fc24</string></value></member>` +
		`<member><name>arch</name><value><string>i686</string></value></member><member><name>payloadhash</name><value><string>` + md5hex + `</string></value></member>` +
		`<member><name>size</name><value><int>` + strconv.Itoa(size) + `</int></value></member><member><name>external_repo_id</name><value><int>0</int></value></member></struct>`
}

// TestKojiFetch: the bridge's look-up and download of an RPM named by
// NEVRA, and each check that refuses one (§7.7): Koji's epoch and
// payloadhash against the request, the size, the MD5 over header and
// payload, HTTP errors, redirects off the topurl's host, the size limit.
func TestKojiFetch(t *testing.T) {
	zlib, err := os.ReadFile(artifacts.FedoraZlib(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := zlibMD5(t, zlib)
	const path = "/packages/zlib/1.2.8/10.fc24/i686/zlib-1.2.8-10.fc24.i686.rpm"
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(zlib) }))
	defer other.Close()
	fields := func(epoch string, md5 []byte) protocol.Fields {
		var f protocol.Fields
		for k, v := range map[string]string{"rpm-name": "zlib", "rpm-version": "1.2.8", "rpm-release": "10.fc24", "rpm-arch": "i686", "rpm-epoch": epoch} {
			f.SetStr(k, v)
		}
		if md5 != nil {
			f.Set("rpm-sigmd5", md5)
		}
		return f
	}
	corrupt := bytes.Clone(zlib)
	corrupt[len(corrupt)-10] ^= 1
	for _, c := range []struct {
		name string
		fake fakeKoji
		f    protocol.Fields
		max  uint64
		want string // "" = fetched
	}{
		{"ok", fakeKoji{rpmXML: rpmXML("<nil/>", len(zlib), hex.EncodeToString(sum)), files: map[string][]byte{path: zlib}}, fields("", sum), 1 << 30, ""},
		{"unknown", fakeKoji{rpmXML: "<nil/>"}, fields("", sum), 1 << 30, "koji getRPM: no RPM zlib-1.2.8-10.fc24.i686"},
		{"epoch", fakeKoji{rpmXML: rpmXML("<int>1</int>", len(zlib), hex.EncodeToString(sum))}, fields("", sum), 1 << 30, `has epoch "1" in Koji`},
		{"payloadhash", fakeKoji{rpmXML: rpmXML("<nil/>", len(zlib), strings.Repeat("0", 32))}, fields("", sum), 1 << 30, "payloadhash"},
		{"too large", fakeKoji{rpmXML: rpmXML("<nil/>", len(zlib), hex.EncodeToString(sum))}, fields("", sum), 1000, "the limit is 1000"},
		{"404", fakeKoji{rpmXML: rpmXML("<nil/>", len(zlib), hex.EncodeToString(sum))}, fields("", sum), 1 << 30, "HTTP 404"},
		{"size", fakeKoji{rpmXML: rpmXML("<nil/>", len(zlib)+1, hex.EncodeToString(sum)), files: map[string][]byte{path: zlib}}, fields("", sum), 1 << 30, "Koji says"},
		{"md5", fakeKoji{rpmXML: rpmXML("<nil/>", len(zlib), hex.EncodeToString(sum)), files: map[string][]byte{path: corrupt}}, fields("", sum), 1 << 30, "MD5 over header and payload"},
		{"redirect", fakeKoji{rpmXML: rpmXML("<nil/>", len(zlib), hex.EncodeToString(sum)), redirect: other.URL}, fields("", sum), 1 << 30, "off the topurl's host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(&c.fake)
			defer srv.Close()
			b := &Bridge{cfg: Config{Koji: map[string]KojiInstance{"koji": {HubURL: srv.URL + "/kojihub", TopURL: srv.URL, Timeout: 30 * time.Second}}}}
			j := &kojiJob{b: b, name: "koji", user: "alice", maxSize: c.max, rpms: map[string]*koji.RPMInfo{}}
			inst := b.cfg.Koji["koji"]
			j.inst = &inst
			fe, err := j.prepare(context.Background(), "id", c.f, true)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer fe.Close()
				got, _ := io.ReadAll(fe.f)
				if !bytes.Equal(got, zlib) || fe.size != uint64(len(zlib)) || j.rpms["id"].ID != 7 {
					t.Fatalf("fetched %d bytes, size %d", len(got), fe.size)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %q", err, c.want)
			}
			if fe != nil {
				t.Fatal("a refused fetch returned a file")
			}
		})
	}
}

// zlibMD5 is the MD5 over header and payload that the package stores.
func zlibMD5(t *testing.T, pkg []byte) []byte {
	f, err := os.CreateTemp(t.TempDir(), "rpm")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(pkg)
	sum, err := headerPayloadMD5(f, int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	return sum
}
