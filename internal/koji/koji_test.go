package koji

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHub answers XML-RPC calls with handlers, recording what it got.
type fakeHub struct {
	t        *testing.T
	mu       sync.Mutex
	handlers map[string]func(r *http.Request, args []any) (any, error)
	calls    []string
	paths    []string
	headers  []http.Header
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.t.Errorf("reading request: %v", err)
		return
	}
	method, args, err := decodeCall(body)
	if err != nil {
		h.t.Errorf("hub could not decode %q: %v", body, err)
		http.Error(w, "bad call", 400)
		return
	}
	h.mu.Lock()
	h.calls = append(h.calls, method)
	h.paths = append(h.paths, r.URL.Path)
	h.headers = append(h.headers, r.Header.Clone())
	fn := h.handlers[method]
	h.mu.Unlock()
	if fn == nil {
		writeFault(w, 1000, "no such method "+method)
		return
	}
	v, err := fn(r, args)
	var f *Fault
	if errors.As(err, &f) {
		writeFault(w, f.Code, f.String)
		return
	}
	if err != nil {
		h.t.Errorf("handler %s: %v", method, err)
		return
	}
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n")
	if err := encodeValue(&b, v, 0); err != nil {
		h.t.Errorf("encoding %v: %v", v, err)
	}
	b.WriteString("\n</param>\n</params>\n</methodResponse>\n")
	w.Write(b.Bytes())
}

func writeFault(w http.ResponseWriter, code int, s string) {
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n")
	encodeValue(&b, map[string]any{"faultCode": code, "faultString": s}, 0)
	b.WriteString("\n</fault>\n</methodResponse>\n")
	w.Write(b.Bytes())
}

func newFake(t *testing.T) (*fakeHub, *Client) {
	h := &fakeHub{t: t, handlers: map[string]func(*http.Request, []any) (any, error){}}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/kojihub", Options{HTTPClient: srv.Client(), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

func TestValuesRoundTrip(t *testing.T) {
	when := time.Date(2026, 12, 7, 18, 0, 1, 0, time.UTC)
	args := []any{
		nil, true, false, 0, -1, int64(1) << 40, int64(-1) << 40, 2147483647, -2147483648,
		1.5, "", "a<b>&c\"'", "é\U0001F600\t\n", []byte{0, 1, 2, 0xff}, when,
		[]any{nil, "x", []any{}}, map[string]any{"n": nil, "i": 3, "s": map[string]any{}},
		Kwargs{"strict": true},
	}
	body, err := encodeCall("m<x>", args)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("<nil/>")) || !bytes.Contains(body, []byte("<i8>1099511627776</i8>")) || !bytes.Contains(body, []byte("<int>2147483647</int>")) {
		t.Fatalf("nil or i8 not encoded as Koji expects: %s", body)
	}
	method, got, err := decodeCall(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{
		nil, true, false, int64(0), int64(-1), int64(1) << 40, int64(-1) << 40, int64(2147483647), int64(-2147483648),
		1.5, "", "a<b>&c\"'", "é\U0001F600\t\n", []byte{0, 1, 2, 0xff}, when,
		[]any{nil, "x", []any{}}, map[string]any{"n": nil, "i": int64(3), "s": map[string]any{}},
		map[string]any{"strict": true, "__starstar": true},
	}
	if method != "m<x>" || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %s %#v\nwant %#v", method, got, want)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, v := range []any{"nul\x00", "\x01", struct{}{}, map[string]any{"k\x00": 1}} {
		if _, err := encodeCall("m", []any{v}); err == nil {
			t.Errorf("%q encoded", v)
		}
	}
}

// A response as Koji's hub writes it (its own marshaller: i8, nil,
// untyped strings, whitespace).
const kojiGetRPM = `<?xml version='1.0'?>
<methodResponse>
<params>
<param>
<value><struct>
<member>
<name>id</name>
<value><int>7</int></value>
</member>
<member>
<name>build_id</name>
<value><i8>4294967296</i8></value>
</member>
<member><name>name</name><value><string>zlib</string></value></member>
<member><name>epoch</name><value><nil/></value></member>
<member><name>version</name><value>1.2.8</value></member>
<member><name>release</name><value><string>10.fc24</string></value></member>
<member><name>arch</name><value><string>i686</string></value></member>
<member><name>payloadhash</name><value><string>0123456789abcdef0123456789abcdef</string></value></member>
<member><name>size</name><value><int>94862</int></value></member>
<member><name>external_repo_id</name><value><int>0</int></value></member>
<member><name>extra</name><value><nil/></value></member>
<member><name>buildtime</name><value><i8>1464015651</i8></value></member>
</struct></value>
</param>
</params>
</methodResponse>
`

func TestGetRPM(t *testing.T) {
	h, c := newFake(t)
	var gotArg any
	h.handlers["getRPM"] = func(_ *http.Request, args []any) (any, error) {
		gotArg = args[0]
		if args[0] == "nope-1-1.x86_64" {
			return nil, nil
		}
		return "raw", nil
	}
	// Serve the raw Koji text for this one.
	raw := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, kojiGetRPM)
	}))
	defer raw.Close()
	rc, err := New(raw.URL, Options{HTTPClient: raw.Client()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rc.GetRPM(context.Background(), "zlib-1.2.8-10.fc24.i686")
	if err != nil {
		t.Fatal(err)
	}
	want := &RPMInfo{ID: 7, BuildID: 1 << 32, Name: "zlib", Version: "1.2.8", Release: "10.fc24", Arch: "i686", PayloadHash: "0123456789abcdef0123456789abcdef", Size: 94862}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}

	_, err = c.GetRPM(context.Background(), "nope-1-1.x86_64")
	if !IsNotFound(err) || !strings.Contains(err.Error(), "getRPM") {
		t.Fatalf("unknown RPM: %v", err)
	}
	h.handlers["getRPM"] = func(_ *http.Request, args []any) (any, error) {
		gotArg = args[0]
		return map[string]any{"id": 9, "build_id": 3, "name": "n", "epoch": 2, "version": "v", "release": "r", "arch": "noarch", "payloadhash": "aa", "size": 10, "external_repo_id": 0}, nil
	}
	r, err = c.GetRPM(context.Background(), NVRA{"n", "v", "r", "noarch"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Epoch == nil || *r.Epoch != 2 || r.NVRA() != "n-v-r.noarch" {
		t.Fatalf("got %+v", r)
	}
	if !reflect.DeepEqual(gotArg, map[string]any{"name": "n", "version": "v", "release": "r", "arch": "noarch"}) {
		t.Fatalf("selector sent as %#v", gotArg)
	}
	if _, err := c.GetRPM(context.Background(), 1.5); err == nil {
		t.Fatal("a float selected an RPM")
	}
}

func TestFault(t *testing.T) {
	h, c := newFake(t)
	h.handlers["addRPMSig"] = func(_ *http.Request, args []any) (any, error) {
		return nil, &Fault{Code: 1000, String: "Signature already exists for package x, key abcd"}
	}
	err := c.AddRPMSig(context.Background(), 3, []byte("hdr"))
	var f *Fault
	if !errors.As(err, &f) || f.Method != "addRPMSig" || f.Code != 1000 || !strings.Contains(f.String, "already exists") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "koji addRPMSig: fault 1000") {
		t.Fatalf("message %q", err)
	}
}

func TestLoginSessionAndHelpers(t *testing.T) {
	h, c := newFake(t)
	h.handlers["sslLogin"] = func(_ *http.Request, args []any) (any, error) {
		if !reflect.DeepEqual(args, []any{map[string]any{"proxyuser": "alice", "__starstar": true}}) {
			return nil, &Fault{Code: 1000, String: fmt.Sprintf("bad args %#v", args)}
		}
		return map[string]any{"session-id": int64(5) << 33, "session-key": "5-abc", "header-auth": true}, nil
	}
	h.handlers["queryRPMSigs"] = func(_ *http.Request, args []any) (any, error) {
		want := map[string]any{"rpm_id": int64(3), "sigkey": "fd431d51", "__starstar": true}
		if !reflect.DeepEqual(args, []any{want}) {
			return nil, &Fault{Code: 1000, String: fmt.Sprintf("bad args %#v", args)}
		}
		return []any{map[string]any{"rpm_id": 3, "sigkey": "fd431d51", "sighash": "00"}}, nil
	}
	var sent any
	h.handlers["addRPMSig"] = func(_ *http.Request, args []any) (any, error) {
		sent = args
		return nil, nil
	}
	h.handlers["writeSignedRPM"] = func(_ *http.Request, args []any) (any, error) { return nil, nil }
	h.handlers["moveBuild"] = func(_ *http.Request, args []any) (any, error) {
		if !reflect.DeepEqual(args, []any{"a", "b", "n-v-r"}) {
			return nil, &Fault{Code: 1000, String: "bad args"}
		}
		return 44, nil
	}
	h.handlers["getTaskInfo"] = func(_ *http.Request, args []any) (any, error) {
		return map[string]any{"id": args[0], "method": "tagBuild", "state": TaskClosed, "owner": 1}, nil
	}
	h.handlers["logout"] = func(_ *http.Request, args []any) (any, error) { return nil, nil }

	ctx := context.Background()
	if _, err := c.QueryRPMSigs(ctx, 3, "FD431D51"); err != nil {
		t.Fatal(err)
	}
	if err := c.SSLLogin(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.SSLLogin(ctx, "alice"); err == nil {
		t.Fatal("second login accepted")
	}
	sigs, err := c.QueryRPMSigs(ctx, 3, "FD431D51")
	if err != nil || len(sigs) != 1 || sigs[0].SigKey != "fd431d51" {
		t.Fatalf("%v %v", sigs, err)
	}
	if err := c.AddRPMSig(ctx, 3, []byte{0x8e, 0xad, 0xe8, 1}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sent, []any{int64(3), "jq3oAQ=="}) {
		t.Fatalf("addRPMSig sent %#v, want the header in base64", sent)
	}
	if err := c.WriteSignedRPM(ctx, 3, "FD431D51"); err != nil {
		t.Fatal(err)
	}
	task, err := c.MoveBuild(ctx, "a", "b", "n-v-r")
	if err != nil || task != 44 {
		t.Fatalf("%d %v", task, err)
	}
	if err := c.WaitTask(ctx, task, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if c.LoggedIn() {
		t.Fatal("still logged in")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	wantCalls := []string{"queryRPMSigs", "sslLogin", "queryRPMSigs", "addRPMSig", "writeSignedRPM", "moveBuild", "getTaskInfo", "logout"}
	if !reflect.DeepEqual(h.calls, wantCalls) {
		t.Fatalf("calls %v", h.calls)
	}
	if h.paths[1] != "/kojihub/ssllogin" || h.paths[0] != "/kojihub" || h.paths[2] != "/kojihub" {
		t.Fatalf("paths %v", h.paths)
	}
	if h.headers[0].Get("Koji-Session-Id") != "" || h.headers[1].Get("Koji-Session-Id") != "" {
		t.Fatal("session headers before login")
	}
	for i := 2; i < len(h.calls); i++ {
		hd := h.headers[i]
		if hd.Get("Koji-Session-Id") != "42949672960" || hd.Get("Koji-Session-Key") != "5-abc" || hd.Get("Koji-Session-Callnum") != fmt.Sprint(i-2) {
			t.Fatalf("call %d (%s) headers %v", i, h.calls[i], hd)
		}
	}
}

func TestLimitsAndBadResponses(t *testing.T) {
	big := strings.Repeat("x", 2000)
	nested := strings.Repeat("<value><array><data>", 100) + strings.Repeat("</data></array></value>", 100)
	cases := map[string]string{
		"too large":   "<methodResponse><params><param><value><string>" + big + "</string></value></param></params></methodResponse>",
		"deep":        "<methodResponse><params><param>" + nested + "</param></params></methodResponse>",
		"bad int":     "<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>",
		"i8 overflow": "<methodResponse><params><param><value><i8>99999999999999999999</i8></value></param></params></methodResponse>",
		"unknown":     "<methodResponse><params><param><value><bigint>1</bigint></value></param></params></methodResponse>",
		"trailing":    "<methodResponse><params><param><value>x</value></param></params></methodResponse><x/>",
		"truncated":   "<methodResponse><params><param><value><struct>",
		"entity":      "<!DOCTYPE x [<!ENTITY a \"b\">]><methodResponse><params><param><value>&a;</value></param></params></methodResponse>",
		"bad fault":   "<methodResponse><fault><value><string>x</string></value></fault></methodResponse>",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
			defer srv.Close()
			c, err := New(srv.URL, Options{MaxResponseSize: 1024})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Call(context.Background(), "getRPM", 1)
			if err == nil || !strings.Contains(err.Error(), "koji getRPM") {
				t.Fatalf("accepted or unnamed: %v", err)
			}
			var f *Fault
			if errors.As(err, &f) {
				t.Fatalf("reported as a fault: %v", err)
			}
		})
	}
}

func TestNoRedirectsAndStatus(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("redirect followed")
	}))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := New(srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(context.Background(), "hello"); err == nil || !strings.Contains(err.Error(), "HTTP 307") {
		t.Fatalf("got %v", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(srv.URL, Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(context.Background(), "hello"); err == nil {
		t.Fatal("a hub that never answers was answered")
	}
}

func TestNewRefuses(t *testing.T) {
	for _, u := range []string{"", "ftp://x/", "koji.example.org", "https://"} {
		if _, err := New(u, Options{}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

func TestURLs(t *testing.T) {
	b := &BuildInfo{PackageName: "zlib", Version: "1.2.8", Release: "10.fc24", VolumeName: "DEFAULT"}
	r := &RPMInfo{Name: "zlib", Version: "1.2.8", Release: "10.fc24", Arch: "i686"}
	if got := RPMURL("http://h/kojifiles/", b, r); got != "http://h/kojifiles/packages/zlib/1.2.8/10.fc24/i686/zlib-1.2.8-10.fc24.i686.rpm" {
		t.Fatal(got)
	}
	b.VolumeName = "archive"
	if got := SignedRPMURL("http://h/kojifiles", b, r, "FD431D51"); got != "http://h/kojifiles/vol/archive/packages/zlib/1.2.8/10.fc24/data/signed/fd431d51/i686/zlib-1.2.8-10.fc24.i686.rpm" {
		t.Fatal(got)
	}
}
