package robo

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testSourcePolicy sends, through RabbitMQ, requests that the review
// showed bypassed allowed_sources when URLs were compared as text
// prefixes, and checks that each is answered FAILURE ("not an allowed
// source"), that nothing was fetched from the server outside the list,
// and that no signature was written anywhere; an allowed artifact in the
// same run is signed. The entries are written as an operator might,
// without trailing slashes, which is what the prefix comparison let
// through.
func testSourcePolicy(t *testing.T, w *world, gpg *gpgVerifier) {
	const name = "sources"
	root := t.TempDir()
	allowed, outside := filepath.Join(root, "builds"), filepath.Join(root, "home")
	os.MkdirAll(allowed, 0o755)
	os.MkdirAll(outside, 0o755)

	// A server outside the list, on another loopback address, serving
	// the artifact under any path.
	ln, err := net.Listen("tcp", "127.0.0.12:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.12 (loopback): %v", err)
	}
	var evilHits atomic.Int32
	_, outRef := artifact(t, outside, "x.rpm", 4096)
	outData, _ := os.ReadFile(filepath.Join(outside, "x.rpm"))
	evil := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		evilHits.Add(1)
		rw.Write(outData)
	})}}
	evil.Start()
	defer evil.Close()
	evilHost := ln.Addr().String()
	// An allowed server that redirects outside.
	good := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		http.Redirect(rw, req, evil.URL+"/x.rpm", http.StatusFound)
	}))
	defer good.Close()
	os.Symlink(filepath.Join(outside, "x.rpm"), filepath.Join(allowed, "link.rpm"))

	run := w.startRobo(t, artifactsConfig(w, name, "", fmt.Sprintf("allowed_sources = [%q, %q, %q]\n",
		"file://"+allowed, "http://127.0.0.1", good.URL+"/builds")))
	p := w.newPeer(t, name+".finished", artifactsKey(name)+".finished")

	bypasses := map[string]string{
		"dotdot":     "file://" + allowed + "/../home/x.rpm",
		"dotdot-pct": "file://" + allowed + "/%2e%2e/home/x.rpm",
		"userinfo":   "http://127.0.0.1@" + evilHost + "/x.rpm",
		"hostsuffix": "http://127.0.0.12" + strings.TrimPrefix(evilHost, "127.0.0.12") + "/x.rpm",
		"redirect":   good.URL + "/builds/x.rpm",
		"symlink":    "file://" + allowed + "/link.rpm",
	}
	for id, u := range bypasses {
		ref := map[string]string{"file": u, "checksum": outRef["checksum"]}
		p.publish(msg{key: artifactsKey(name), body: jsonBody(t, map[string]any{"build_id": id, "artifacts": []any{ref}})})
	}
	okPath, okRef := artifact(t, allowed, "ok.img", 4096)
	p.publish(msg{key: artifactsKey(name), body: jsonBody(t, map[string]any{"build_id": "ok", "artifacts": []any{okRef}})})

	seen := map[string]bool{}
	for _, f := range p.waitFinished(len(bypasses)+1, 60*time.Second) {
		id, _ := f["build_id"].(string)
		seen[id] = true
		fm, _ := f["failure-message"].(string)
		if id == "ok" {
			if status(f) != "SUCCESS" {
				t.Errorf("the allowed artifact: %v", f)
			}
			continue
		}
		if status(f) != "FAILURE" || !strings.Contains(fm, "not an allowed source") {
			t.Errorf("%s (%s): finished message %v, want FAILURE: not an allowed source", id, bypasses[id], f)
		}
	}
	if len(seen) != len(bypasses)+1 {
		t.Fatalf("answered %v", seen)
	}
	gpg.verify(okPath+".sig", okPath)
	if n := evilHits.Load(); n != 0 {
		t.Errorf("the server outside allowed_sources received %d requests", n)
	}
	for _, sig := range []string{filepath.Join(outside, "x.rpm.sig"), filepath.Join(allowed, "link.rpm.sig")} {
		if _, err := os.Stat(sig); err == nil {
			t.Errorf("%s was written", sig)
		}
	}
	if n := counter(run.r, "signet_robo_artifacts_total", "outcome", "signed"); n != 1 {
		t.Errorf("%v artifacts signed, want 1", n)
	}
	w.waitQueues(t, map[string]int{name: 0, name + ".retry": 0, name + ".dead": 0})

	// The devstack's signet-server, which holds the token PIN when it
	// is given one and users' PINs in its unwrap cache, writes no core.
	if b, err := os.ReadFile(filepath.Join(w.dir, "run/server.pid")); err == nil {
		limits, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/limits")
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^Max core file size\s+0\s+0\s`).Match(limits) {
			t.Errorf("signet-server's core file size limit is not 0:\n%s", limits)
		}
	} else if os.Getenv("SIGNET_DEVSTACK") == "" {
		t.Fatalf("the devstack's server pid: %v", err)
	}

	// Without allowed_sources, signet-robo does not start.
	cfg := filepath.Join(t.TempDir(), "robo.toml")
	os.WriteFile(cfg, []byte(strings.Replace(artifactsConfig(w, name, "url = \"amqp://127.0.0.1/\"", "allowed_sources = []\n"), "[amqp]", fmt.Sprintf("client_config = %q\n[amqp]", filepath.Join(w.dir, "alice.toml")), 1)), 0o600)
	if _, err := LoadConfigFile(cfg); err == nil || !strings.Contains(err.Error(), "needs allowed_sources") {
		t.Errorf("a configuration without allowed_sources: %v", err)
	}
}
