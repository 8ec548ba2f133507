package robo

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/testenv"
	rabbitmqtest "github.com/signet-project/signet/rabbitmq-test"
)

// TestRobo runs signet-robo against a real RabbitMQ and a real devstack;
// the subtests share both (each has its own queues and routing keys).
func TestRobo(t *testing.T) {
	t0 := time.Now()
	w := newWorld(t)
	t.Logf("broker and devstack up in %s", time.Since(t0))
	rsa := w.publicKey(t, "demo-rsa")
	gpg := newGPG(t, rsa)
	t.Run("ArtifactsSign", func(t *testing.T) { testArtifactsSign(t, w, gpg) })
	t.Run("Malformed", func(t *testing.T) { testMalformed(t, w) })
	t.Run("SourcePolicy", func(t *testing.T) { testSourcePolicy(t, w, gpg) })
	t.Run("Packages", func(t *testing.T) { testPackages(t, w, rsa) })
	t.Run("XMLSign", func(t *testing.T) { testXML(t, w, gpg) })
	t.Run("OSTreeSign", func(t *testing.T) { testOSTree(t, w, rsa) })
	t.Run("BridgeRestart", func(t *testing.T) { testBridgeRestart(t, w, gpg) })
	t.Run("BrokerRestart", func(t *testing.T) { testBrokerRestart(t, w, gpg) })
	t.Run("Shutdown", func(t *testing.T) { testShutdown(t, w, gpg) })
	t.Run("TLSExternal", func(t *testing.T) { testTLS(t, w, gpg) })
}

// artifactsConfig is a configuration with artifacts-sign enabled on queue
// name; amqp holds extra [amqp] lines, kind extra [artifacts_sign] lines.
// Unless kind sets allowed_sources, artifacts may come from the temporary
// directory (where the tests write them).
func artifactsConfig(w *world, name, amqp, kind string) string {
	if !strings.Contains(kind, "allowed_sources") {
		kind += fmt.Sprintf("allowed_sources = [%q]\n", "file://"+os.TempDir()+"/")
	}
	return fmt.Sprintf(`[amqp]
queue = "%[1]s"
dead_letter_exchange = "%[1]s.dlx"
dead_letter_queue = "%[1]s.dead"
retry_delay = "500ms"
reconnect_min = "100ms"
reconnect_max = "1s"
publish_timeout = "5s"
%[3]s
[artifacts_sign]
enabled = true
routing_keys = ["%[4]s"]
key = "demo-rsa"
passphrase_file = %[2]q
%[5]s
`, name, w.passFile, amqp, artifactsKey(name), kind)
}

func artifactsKey(name string) string {
	return "org.fedoraproject.test." + name + ".coreos.build.request.artifacts-sign"
}

// artifact writes size random bytes to dir/name and returns its request
// entry.
func artifact(t testing.TB, dir, name string, size int) (path string, ref map[string]string) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return path, map[string]string{"file": "file://" + path, "checksum": "sha256:" + hex.EncodeToString(sum[:])}
}

// store is an HTTP server holding artifacts (GET) and receiving their
// signatures (PUT), counting the PUTs.
type store struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	puts  map[string]int
}

func newStore(t *testing.T) *store {
	s := &store{files: map[string][]byte{}, puts: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch req.Method {
		case http.MethodGet:
			b, ok := s.files[req.URL.Path]
			if !ok {
				http.NotFound(rw, req)
				return
			}
			rw.Write(b)
		case http.MethodPut:
			b, _ := io.ReadAll(req.Body)
			s.files[req.URL.Path] = b
			s.puts[req.URL.Path]++
			rw.WriteHeader(http.StatusCreated)
		default:
			rw.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func status(m map[string]any) string { s, _ := m["status"].(string); return s }

func testArtifactsSign(t *testing.T, w *world, gpg *gpgVerifier) {
	const name = "artifacts"
	srv := newStore(t)
	run := w.startRobo(t, artifactsConfig(w, name, "max_attempts = 4",
		fmt.Sprintf("allowed_sources = [%q, %q]\n", "file://"+os.TempDir()+"/", srv.URL+"/builds/")))
	p := w.newPeer(t, name+".finished", artifactsKey(name)+".finished")
	dir := t.TempDir()

	// Two local artifacts and one served over HTTP, whose signature goes
	// back by PUT beside it.
	pathA, refA := artifact(t, dir, "fedora-coreos-43.x86_64.qcow2", 300<<10)
	pathB, refB := artifact(t, dir, "fedora-coreos-43.x86_64.iso", 2<<20)
	pathC, refC := artifact(t, dir, "fedora-coreos-43.x86_64.raw.xz", 64<<10)
	data, _ := os.ReadFile(pathC)
	srv.files["/builds/c.raw.xz"] = data
	refC["file"] = srv.URL + "/builds/c.raw.xz"
	req := map[string]any{"build_id": "43.20250101.0", "basearch": "x86_64", "artifacts": []any{refA, refB, refC}}
	p.publish(msg{key: artifactsKey(name), body: jsonBody(t, req)})
	f := p.waitFinished(1, 30*time.Second)[0]
	if status(f) != "SUCCESS" || f["build_id"] != "43.20250101.0" || f["_routing_key"] != artifactsKey(name)+".finished" {
		t.Fatalf("finished message %v", f)
	}
	gpg.verify(pathA+".sig", pathA)
	gpg.verify(pathB+".sig", pathB)
	sigC := filepath.Join(dir, "c.sig")
	os.WriteFile(sigC, srv.files["/builds/c.raw.xz.sig"], 0o644)
	gpg.verify(sigC, pathC)

	// The same request again (a redelivery, a replay): nothing is signed
	// again, the answer is the same.
	before := map[string][]byte{}
	for _, pth := range []string{pathA, pathB} {
		before[pth], _ = os.ReadFile(pth + ".sig")
	}
	p.reset()
	p.publish(msg{key: artifactsKey(name), body: jsonBody(t, req)})
	if f := p.waitFinished(1, 30*time.Second)[0]; status(f) != "SUCCESS" {
		t.Fatalf("finished message for the replay: %v", f)
	}
	for pth, b := range before {
		if now, _ := os.ReadFile(pth + ".sig"); string(now) != string(b) {
			t.Fatalf("%s.sig was rewritten by a replayed request", pth)
		}
	}
	if n := srv.puts["/builds/c.raw.xz.sig"]; n != 1 {
		t.Fatalf("the HTTP artifact's signature was PUT %d times, want 1", n)
	}
	if s, k := counter(run.r, "signet_robo_artifacts_total", "outcome", "signed"), counter(run.r, "signet_robo_artifacts_total", "outcome", "skipped"); s != 3 || k != 3 {
		t.Fatalf("artifacts signed %v, skipped %v; want 3 and 3", s, k)
	}

	// A signature file that does not verify (another key's, a truncated
	// one) is replaced.
	pathE, refE := artifact(t, dir, "stale.img", 4096)
	os.WriteFile(pathE+".sig", []byte("not a signature"), 0o644)
	p.reset()
	p.publish(msg{key: artifactsKey(name), body: jsonBody(t, map[string]any{"build_id": "stale", "artifacts": []any{refE}})})
	if f := p.waitFinished(1, 30*time.Second)[0]; status(f) != "SUCCESS" {
		t.Fatalf("finished message %v", f)
	}
	gpg.verify(pathE+".sig", pathE)

	// A checksum that does not match: answered FAILURE, acknowledged,
	// nothing signed.
	pathD, refD := artifact(t, dir, "tampered.img", 4096)
	refD["checksum"] = "sha256:" + strings.Repeat("ab", 32)
	p.reset()
	p.publish(msg{key: artifactsKey(name), body: jsonBody(t, map[string]any{"build_id": "bad", "artifacts": []any{refD}})})
	f = p.waitFinished(1, 30*time.Second)[0]
	if fm, _ := f["failure-message"].(string); status(f) != "FAILURE" || !strings.Contains(fm, "checksum mismatch") || f["build_id"] != "bad" {
		t.Fatalf("finished message for a checksum mismatch: %v", f)
	}
	// It names the expected digest, never the file's: that would publish
	// the SHA-256 of any file robo can read.
	realD, _ := os.ReadFile(pathD)
	realSum := sha256.Sum256(realD)
	if fm, _ := f["failure-message"].(string); strings.Contains(strings.ToLower(fm), hex.EncodeToString(realSum[:])) {
		t.Fatalf("the failure message echoes the file's digest: %q", fm)
	}
	if _, err := os.Stat(pathD + ".sig"); err == nil {
		t.Fatal("an artifact whose checksum does not match was signed")
	}

	// Metrics, on loopback.
	addr, err := run.r.ServeMetrics(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`signet_robo_messages_total{kind="artifacts-sign",outcome="success"} 3`,
		`signet_robo_messages_total{kind="artifacts-sign",outcome="failure"} 1`, "signet_robo_signing_seconds_bucket"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	if _, err := run.r.ServeMetrics(t.Context(), "0.0.0.0:0"); err == nil {
		t.Fatal("a metrics endpoint on every interface was accepted")
	}
	w.waitQueues(t, map[string]int{name: 0, name + ".retry": 0, name + ".dead": 0})
}

func testMalformed(t *testing.T, w *world) {
	const name = "malformed"
	run := w.startRobo(t, artifactsConfig(w, name, "", ""))
	p := w.newPeer(t, name+".finished", artifactsKey(name)+".finished")
	_, ref := artifact(t, t.TempDir(), "x", 10)
	good := jsonBody(t, map[string]any{"artifacts": []any{ref}})
	bad := []msg{
		{key: artifactsKey(name), body: []byte("this is not JSON")},
		{key: artifactsKey(name), body: good, contentType: "text/plain"},
		{key: artifactsKey(name), body: good, id: "-"},
		{key: artifactsKey(name), body: good, schema: "org.example.unknown.v9"},
		{key: artifactsKey(name), body: good, schema: "-"},
		{key: artifactsKey(name), body: []byte(`{"artifacts": [{"file": "file:///etc/passwd", "checksum": "md5:1234"}]}`)},
		{key: artifactsKey(name), body: []byte(`["an", "array"]`)},
	}
	for _, m := range bad {
		p.publish(m)
	}
	// Every one is rejected without requeue: the queue dead-letters them,
	// none is answered, none is left in the queue or unacknowledged.
	w.waitQueues(t, map[string]int{name: 0, name + ".retry": 0, name + ".dead": len(bad)})
	if n := counter(run.r, "signet_robo_messages_total", "outcome", "rejected"); n != float64(len(bad)) {
		t.Fatalf("%v messages rejected, want %d", n, len(bad))
	}
	p.mu.Lock()
	n := len(p.finished)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d malformed messages were answered", n)
	}
}

func fileRef(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return map[string]string{"file": "file://" + path, "checksum": "sha256:" + hex.EncodeToString(sum[:])}
}

func testPackages(t *testing.T, w *world, rsa []byte) {
	const name = "packages"
	rk := "org.signet.test.request.sign-packages"
	out := t.TempDir()
	rpmDir, efi := artifacts.RPMUtilsTestdata(t), artifacts.EFIImages(t)
	w.startRobo(t, fmt.Sprintf(`[amqp]
queue = "%[1]s"
dead_letter_exchange = "%[1]s.dlx"
retry_delay = "500ms"
[packages]
enabled = true
routing_keys = [%[2]q]
output_dir = %[3]q
allowed_sources = [%[5]q, %[6]q]
[[packages.keys]]
name = "demo-rsa"
passphrase_file = %[4]q
[[packages.keys]]
name = "demo-sb"
passphrase_file = %[4]q
cert_name = "signer"
`, name, rk, out, w.passFile, "file://"+filepath.Clean(rpmDir)+"/", "file://"+filepath.Clean(efi)+"/"))
	p := w.newPeer(t, name+".finished", rk+".finished")

	// RPMs: one sign-rpms batch with head signing.
	var rpms []any
	var names []string
	paths, _ := filepath.Glob(filepath.Join(rpmDir, "*.rpm"))
	for _, pth := range paths {
		rpms = append(rpms, fileRef(t, pth))
		names = append(names, filepath.Base(pth))
	}
	p.publish(msg{key: rk, body: jsonBody(t, map[string]any{"key": "demo-rsa", "destination": "f43/updates", "rpms": rpms})})
	// EFI images: sign-pe with the stored certificate.
	images := []any{fileRef(t, filepath.Join(efi, "amd64", "shim.efi")), fileRef(t, filepath.Join(efi, "arm64", "grub.efi"))}
	p.publish(msg{key: rk, body: jsonBody(t, map[string]any{"key": "demo-sb", "destination": "efi", "images": images})})

	// simple-1.0.1 has no payload digest: its header signature would not
	// cover the payload, so it travels whole in the same batch and gets a
	// header+payload signature too. Every package is signed.
	const whole = "simple-1.0.1-1.i386.rpm"
	fs := p.waitFinished(2, 90*time.Second)
	for _, f := range fs {
		res, _ := f["results"].([]any)
		if len(res) == 0 {
			t.Fatalf("finished message without results: %v", f)
		}
		for _, r := range res {
			if rm, _ := r.(map[string]any); rm["status"] != "SUCCESS" || rm["output"] == "" {
				t.Fatalf("result %v", r)
			}
		}
		if status(f) != "SUCCESS" {
			t.Fatalf("finished message %v, want status SUCCESS", f)
		}
	}
	db := t.TempDir()
	pub := filepath.Join(db, "demo-rsa.asc")
	os.WriteFile(pub, rsa, 0o644)
	testenv.Run(t, db, nil, "rpmkeys", "--dbpath", db, "--import", pub)
	for _, n := range names {
		got := testenv.Run(t, db, nil, "rpmkeys", "--dbpath", db, "--checksig", "-v", filepath.Join(out, "f43/updates", n))
		if !strings.Contains(got, "Header V4 RSA/SHA256 Signature, key ID") || !strings.Contains(got, ": OK") || strings.Contains(got, "NOKEY") {
			t.Fatalf("rpmkeys --checksig %s:\n%s", n, got)
		}
		if n == whole && !strings.Contains(got, "    V4 RSA/SHA256 Signature, key ID") {
			t.Fatalf("rpmkeys --checksig %s: no header+payload signature:\n%s", n, got)
		}
	}
	ca := filepath.Join(w.dir, "pki/sb-ca.pem")
	for _, n := range []string{"shim.efi", "grub.efi"} {
		testenv.Run(t, out, nil, "sbverify", "--cert", ca, filepath.Join(out, "efi", n))
	}
	w.waitQueues(t, map[string]int{name: 0, name + ".retry": 0})
}

func testXML(t *testing.T, w *world, gpg *gpgVerifier) {
	const name = "xmlsign"
	rk := "org.signet.test.request.xml-sign"
	w.startRobo(t, fmt.Sprintf(`[amqp]
queue = "%[1]s"
dead_letter_exchange = "%[1]s.dlx"
dead_letter_queue = "%[1]s.dead"
[xml_sign]
enabled = true
routing_keys = [%[2]q]
key = "demo-rsa"
passphrase_file = %[3]q
`, name, rk, w.passFile))
	// Replies go to the queue named in reply_to.
	p := w.newPeer(t, name+".replies")
	doc := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1735689600</revision></repomd>
`)
	id := newUUID()
	p.publish(msg{key: rk, body: doc, contentType: "application/xml", id: id, replyTo: name + ".replies"})
	f := p.waitFinished(1, 30*time.Second)[0]
	sig, _ := f["signature"].(string)
	if status(f) != "SUCCESS" || f["_correlation_id"] != id || f["request_id"] != id || !strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----") {
		t.Fatalf("reply %v", f)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "repomd.xml"), doc, 0o644)
	os.WriteFile(filepath.Join(dir, "repomd.xml.asc"), []byte(sig), 0o644)
	gpg.verify(filepath.Join(dir, "repomd.xml.asc"), filepath.Join(dir, "repomd.xml"))
	// A body that is not XML, XML sent as JSON, or a well-formed
	// document without the XML declaration (robosignatory's guard) is
	// rejected, and nothing is answered.
	p.publish(msg{key: rk, body: []byte("<unclosed>"), contentType: "application/xml", replyTo: name + ".replies"})
	p.publish(msg{key: rk, body: doc, replyTo: name + ".replies"})
	p.publish(msg{key: rk, body: []byte("<repomd><revision>1</revision></repomd>"), contentType: "application/xml", replyTo: name + ".replies"})
	w.waitQueues(t, map[string]int{name: 0, name + ".dead": 3})
	if n := len(p.waitFinished(1, time.Second)); n != 1 {
		t.Fatalf("%d replies, want only the first", n)
	}
}

// requests publishes n artifacts-sign requests of one artifact each and
// returns the artifacts' paths by build id.
func requests(t testing.TB, p *peer, key string, n int, prefix string, size int) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		pth, ref := artifact(t, dir, id+".img", size)
		paths[id] = pth
		p.publish(msg{key: key, body: jsonBody(t, map[string]any{"build_id": id, "artifacts": []any{ref}})})
	}
	return paths
}

// waitAll waits until every build id has a SUCCESS finished message and
// returns how many finished messages each had.
func waitAll(t testing.TB, p *peer, ids map[string]string, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		n := len(p.finished)
		p.mu.Unlock()
		seen := map[string]int{}
		for _, f := range p.waitFinished(n, time.Second) {
			if status(f) != "SUCCESS" {
				t.Fatalf("finished message %v", f)
			}
			seen[f["build_id"].(string)]++
		}
		if len(seen) == len(ids) {
			return seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests finished within %s", len(seen), len(ids), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testBridgeRestart(t *testing.T, w *world, gpg *gpgVerifier) {
	const name = "bridgefault"
	run := w.startRobo(t, artifactsConfig(w, name, "max_attempts = 30", ""))
	p := w.newPeer(t, name+".finished", artifactsKey(name)+".finished")
	// Some requests go through; then the bridge stops, and more arrive.
	ids := requests(t, p, artifactsKey(name), 3, "first", 8<<10)
	waitAll(t, p, ids, 30*time.Second)
	w.stopBridge(t)
	bridgeUp := false
	defer func() {
		if !bridgeUp {
			w.startBridge(t)
		}
	}()
	maps.Copy(ids, requests(t, p, artifactsKey(name), 6, "second", 8<<10))
	// Each request fails (the bridge is down) and waits in the retry
	// queue; none is lost, none spins.
	deadline := time.Now().Add(20 * time.Second)
	for counter(run.r, "signet_robo_retries_total") < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("only %v retries within 20 s", counter(run.r, "signet_robo_retries_total"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.startBridge(t)
	bridgeUp = true
	seen := waitAll(t, p, ids, 60*time.Second)
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s was answered %d times", id, n)
		}
		gpg.verify(ids[id]+".sig", ids[id])
	}
	if n := counter(run.r, "signet_robo_messages_total", "outcome", "dead_lettered"); n != 0 {
		t.Fatalf("%v requests dead-lettered", n)
	}
	w.waitQueues(t, map[string]int{name: 0, name + ".retry": 0, name + ".dead": 0})
}

func testBrokerRestart(t *testing.T, w *world, gpg *gpgVerifier) {
	const name = "brokerfault"
	// Two at a time, so that most requests are still queued or in
	// flight when the broker stops.
	run := w.startRobo(t, artifactsConfig(w, name, "concurrency = 2\nprefetch = 4", ""))
	p := w.newPeer(t, name+".finished", artifactsKey(name)+".finished")
	ids := requests(t, p, artifactsKey(name), 400, "build", 8<<10)
	p.waitFinished(3, 30*time.Second)
	w.broker.StopNode()
	if n := counter(run.r, "signet_robo_messages_total", "outcome", "success"); n >= float64(len(ids)) {
		t.Fatalf("all %v requests were done before the broker stopped: the test proves nothing", n)
	} else {
		t.Logf("%v of %d requests done when the broker stopped", n, len(ids))
	}
	w.broker.StartNode(t)
	p.connect()
	seen := waitAll(t, p, ids, 90*time.Second)
	for id := range seen {
		gpg.verify(ids[id]+".sig", ids[id])
	}
	if counter(run.r, "signet_robo_reconnects_total") < 1 {
		t.Fatal("signet-robo did not notice the broker restart")
	}
	// Nothing left ready or unacknowledged; nothing dead-lettered.
	w.waitQueues(t, map[string]int{name: 0, name + ".retry": 0, name + ".dead": 0})
	t.Logf("%d requests, %d finished messages (a redelivery after the restart is answered again), artifacts signed %v, skipped %v",
		len(ids), sum(seen), counter(run.r, "signet_robo_artifacts_total", "outcome", "signed"), counter(run.r, "signet_robo_artifacts_total", "outcome", "skipped"))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// testShutdown stops signet-robo while it works: what is in flight
// finishes and is acknowledged, the rest stays in the queue for the next
// run, nothing is left unacknowledged.
func testShutdown(t *testing.T, w *world, gpg *gpgVerifier) {
	const name = "shutdown"
	cfg := artifactsConfig(w, name, "concurrency = 2\nprefetch = 8", "")
	run := w.startRobo(t, cfg)
	p := w.newPeer(t, name+".finished", artifactsKey(name)+".finished")
	ids := requests(t, p, artifactsKey(name), 300, "build", 8<<10)
	p.waitFinished(5, 30*time.Second)
	run.stop(t)
	done := counter(run.r, "signet_robo_messages_total", "outcome", "success")
	if done >= float64(len(ids)) {
		t.Fatalf("all %v requests were done before the shutdown: the test proves nothing", done)
	}
	q := w.queues(t)
	if q[name].Unacked != 0 || q[name].Ready+int(done) != len(ids) {
		t.Fatalf("after the shutdown: %v done, queue %+v; want %d ready and none unacknowledged", done, q[name], len(ids)-int(done))
	}
	t.Logf("%v of %d requests done at the shutdown; %d left in the queue", done, len(ids), q[name].Ready)
	// The next run does the rest.
	w.startRobo(t, cfg)
	for id := range waitAll(t, p, ids, 60*time.Second) {
		gpg.verify(ids[id]+".sig", ids[id])
	}
	w.waitQueues(t, map[string]int{name: 0, name + ".retry": 0, name + ".dead": 0})
}

// testTLS connects over TLS with a client certificate and SASL EXTERNAL,
// on a broker of its own that requires both.
func testTLS(t *testing.T, w *world, gpg *gpgVerifier) {
	tw := *w
	tw.broker = rabbitmqtest.StartTLS(t, "signet-robo")
	b := tw.broker
	const name = "tls"
	tw.startRobo(t, artifactsConfig(&tw, name, fmt.Sprintf(`url = %q
[amqp.tls]
ca = %q
cert = %q
key = %q
external = true
`, b.AMQPSURL(), b.CAFile, b.ClientCert, b.ClientKey), ""))
	// The connection is the certificate's user's.
	out, err := b.Ctl("-q", "list_connections", "--no-table-headers", "user", "auth_mechanism", "ssl")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "signet-robo\tEXTERNAL\ttrue") {
		t.Fatalf("rabbitmqctl list_connections user auth_mechanism ssl:\n%s", out)
	}
	p := tw.newPeer(t, name+".finished", artifactsKey(name)+".finished")
	ids := requests(t, p, artifactsKey(name), 3, "tls", 4096)
	for id := range waitAll(t, p, ids, 30*time.Second) {
		gpg.verify(ids[id]+".sig", ids[id])
	}
}
