package interop

// The unmodified Sigul 1.2 client, run as robosignatory runs it, against
// signet's bridge and server and a real Koji hub (issue 15, PROTOCOL-v1
// §7.7, §7.10): the client looks the packages up in Koji and sends none;
// the bridge fetches them, the server signs, the bridge imports the
// signatures into Koji on behalf of the user.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/koji"
	"github.com/signet-project/signet/internal/kojitest"
	"github.com/signet-project/signet/internal/testenv"
)

// kojiStack is a devstack of its own whose bridge has two Koji instances:
// "koji", the real hub, and "down", a hub on a port where nothing listens.
type kojiStack struct {
	s   *signetStack
	hub *kojitest.Hub
	// conf is Sigul's client configuration for alice, with both instances
	// pointing at the real hub for the client's own (unauthenticated)
	// look-ups.
	conf string
}

func startKojiStack(t *testing.T, hub *kojitest.Hub) *kojiStack {
	t.Helper()
	dir := t.TempDir()
	p := testenv.FreePorts(t, 4)
	s := &signetStack{dir: dir, clientPort: p[0], serverPort: p[1]}
	s.env = append(os.Environ(), "SIGNET_CLIENT_PORT="+strconv.Itoa(p[0]), "SIGNET_SERVER_PORT="+strconv.Itoa(p[1]),
		"SIGNET_METRICS_PORT="+strconv.Itoa(p[2]),
		"SIGNET_KOJI_HUB="+hub.URL, "SIGNET_KOJI_TOPURL="+hub.TopURL, "SIGNET_KOJI_CERT="+hub.Cert("bridge"), "SIGNET_KOJI_CA="+hub.CA)
	script := filepath.Join(repoRoot(t), "scripts/devstack.sh")
	devstack := func(action string) {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, action, dir)
		cmd.Env = s.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("devstack.sh %s: %v\n%s", action, err, out)
		}
	}
	t.Cleanup(func() { devstack("down") })
	devstack("up")
	for name, dst := range map[string]*string{"admin-password": &s.adminPW, "alice-passphrase": &s.alicePass} {
		*dst = strings.TrimSpace(string(read(t, filepath.Join(dir, "secrets", name))))
	}

	// The bridge's Koji instances: "koji" (unless devstack.sh made it
	// from SIGNET_KOJI_*) and "down", then a restart of the bridge.
	conf := string(read(t, s.path("bridge.toml")))
	if !strings.Contains(conf, "[koji.koji]") {
		conf += fmt.Sprintf("\n[koji.koji]\nhub = %q\ntopurl = %q\ncert = %q\nca = %q\ntimeout = \"5m\"\n", hub.URL, hub.TopURL, hub.Cert("bridge"), hub.CA)
	}
	closed := testenv.FreePorts(t, 1)[0]
	conf += fmt.Sprintf("\n[koji.down]\nhub = \"https://127.0.0.1:%d/kojihub\"\ntopurl = \"http://127.0.0.1:%d\"\ncert = %q\nca = %q\ntimeout = \"30s\"\n",
		closed, closed, hub.Cert("bridge"), hub.CA)
	if err := os.WriteFile(s.path("bridge.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	restartBridge(t, s)

	// Sigul's client: its Koji look-ups need no login; both instances
	// look up in the real hub (plain HTTP endpoint).
	kojiConf := filepath.Join(dir, "sigul-koji.conf")
	if err := os.WriteFile(kojiConf, []byte(fmt.Sprintf("[koji]\nserver = %s\ntopurl = %s\nauthtype = ssl\n", hub.HTTPURL, hub.TopURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &kojiStack{s: s, hub: hub}
	ini := string(read(t, s.sigulConf(t, "alice")))
	ini = strings.Replace(ini, "[koji]\nkoji-instances:\n", fmt.Sprintf("[koji]\nkoji-instances: koji down\nkoji-config-koji: %s\nkoji-config-down: %s\n", kojiConf, kojiConf), 1)
	if !strings.Contains(ini, "koji-config-down") {
		t.Fatalf("could not add the Koji instances to Sigul's configuration:\n%s", ini)
	}
	k.conf = filepath.Join(dir, "sigul-client", "alice-koji.conf")
	if err := os.WriteFile(k.conf, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// restartBridge stops the devstack's bridge (started by this test through
// devstack.sh) and starts it again on its configuration, recording the
// new pid where devstack.sh down looks; it returns once a request goes
// through the new bridge.
func restartBridge(t *testing.T, s *signetStack) {
	t.Helper()
	pidFile := s.path("run/bridge.pid")
	pid, err := strconv.Atoi(strings.TrimSpace(string(read(t, pidFile))))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stopping the devstack's bridge (pid %d): %v", pid, err)
	}
	for i := 0; syscall.Kill(pid, 0) == nil; i++ {
		if i > 600 {
			t.Fatalf("the devstack's bridge (pid %d) did not stop in 60 s", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf, err := os.OpenFile(s.path("log/bridge.log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(s.path("bin/signet-bridge"), "--config", s.path("bridge.toml"), "run")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The server dials the new bridge again by itself.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := execute(t, "", nil, []string{s.adminPW}, s.path("bin/signet"), "-c", s.path("admin.toml"), "--batch", "list-keys")
		if r.code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request went through the restarted bridge in 3 minutes: %v\nbridge log:\n%s", r, read(t, s.path("log/bridge.log")))
		}
		time.Sleep(time.Second)
	}
}

// sigul runs the unmodified Sigul 1.2 client with Koji's library ahead of
// its header helpers (../shared/third-party/README.md), as alice. -P keeps
// Python from putting client.py's directory, which holds the helpers'
// koji.py, before PYTHONPATH.
func (k *kojiStack) sigul(t *testing.T, args ...string) result {
	t.Helper()
	w := sigulTree(t)
	env := []string{"PYTHONPATH=" + filepath.Join(thirdParty(t), "koji") + ":" + filepath.Join(w, "py"),
		"PYTHONPYCACHEPREFIX=" + filepath.Join(w, "pycache")}
	return execute(t, k.s.dir, env, []string{k.s.alicePass}, "/usr/bin/python3",
		append([]string{"-P", filepath.Join(w, "py/client.py"), "-c", k.conf, "--batch"}, args...)...)
}

// sigkey returns a key's id as Koji names signatures: the last 8 hex
// digits, lower case.
func (k *kojiStack) sigkey(t *testing.T, key string) (string, []byte) {
	t.Helper()
	pub := k.sigul(t, "get-public-key", key)
	if pub.code != 0 {
		t.Fatalf("get-public-key %s: %v", key, pub)
	}
	ring, err := openpgp.ReadArmoredKeyRing(strings.NewReader(pub.stdout))
	if err != nil || len(ring) != 1 {
		t.Fatalf("get-public-key %s: %v", key, err)
	}
	return fmt.Sprintf("%08x", uint32(ring[0].PrimaryKey.KeyId)), []byte(pub.stdout)
}

func TestSigulClientKoji(t *testing.T) {
	thirdParty(t)
	needTools(t, append(sigulTools, "rpm", "rpmkeys")...)
	hub := kojitest.Start(t, kojitest.Options{})
	ctx := context.Background()

	// Builds: go-rpmutils' test packages, and a package Fedora built and
	// signed (it keeps Fedora's signature in Koji: sigkey fdb19c98).
	pkgs := rpmUtilsPackages(t, false)
	pkgs = append(pkgs, artifacts.FedoraZlib(t))
	hub.ImportRPMs(t, pkgs...)
	var nvras []string
	for _, p := range pkgs {
		nvras = append(nvras, strings.TrimSpace(tool(t, "", nil, "rpm", "-qp", "--nosignature", "--nodigest", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}", p)))
	}
	// The Sigul user exists in Koji with the sign permission; the bridge
	// logs in on its behalf.
	hub.AddUser(t, "alice", "sign")

	k := startKojiStack(t, hub)
	sigkey, pub := k.sigkey(t, "demo-rsa")
	db := t.TempDir()
	tool(t, "", nil, "rpmkeys", "--dbpath", db, "--import", writeFile(t, t.TempDir(), "demo-rsa.asc", pub))
	anon := hub.Client(t, "signer")
	signer := hub.Client(t, "signer")
	if err := signer.SSLLogin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	defer signer.Logout(ctx)

	// signedBy checks that Koji lists sigkey's signature for nvra, has
	// writeSignedRPM write the signed copy, and has rpmkeys check it with
	// demo-rsa's key only.
	signedBy := func(t *testing.T, nvra string) {
		t.Helper()
		info, err := anon.GetRPM(ctx, nvra)
		if err != nil {
			t.Fatalf("%s: %v", nvra, err)
		}
		sigs, err := anon.QueryRPMSigs(ctx, info.ID, sigkey)
		if err != nil || len(sigs) != 1 {
			t.Errorf("%s: queryRPMSigs(%s) = %v, %v; want one signature", nvra, sigkey, sigs, err)
			return
		}
		if err := signer.WriteSignedRPM(ctx, info.ID, sigkey); err != nil {
			t.Errorf("%s: %v", nvra, err)
			return
		}
		build, err := anon.GetBuild(ctx, info.BuildID)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), nvra+".rpm")
		download(t, koji.SignedRPMURL(hub.TopURL, build, info, sigkey), path)
		checkRPMSignature(t, db, path)
		if out := tool(t, "", nil, "rpmkeys", "--dbpath", db, "--checksig", "-v", path); !strings.Contains(out, "\n    V4 RSA/SHA256 Signature, key ID "+sigkey) {
			t.Errorf("%s: rpmkeys sees no header+payload (--v3-signature) signature by %s:\n%s", nvra, sigkey, out)
		}
	}

	t.Run("SignRPMsAsRobosignatory", func(t *testing.T) {
		// One NVRA Koji does not know, in the middle: Sigul's client
		// looks every package up itself first and reports it; the rest
		// of the batch is signed.
		batch := append(append(append([]string{}, nvras[:4]...), "nosuch-1.0-1.x86_64"), nvras[4:]...)
		args := append([]string{"sign-rpms", "--store-in-koji", "--koji-only", "-k", "koji", "--v3-signature", "demo-rsa"}, batch...)
		r := k.sigul(t, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "nosuch-1.0-1.x86_64 does not exist in Koji") {
			t.Errorf("the unknown NVRA was not reported: %v", r)
		}
		for _, bad := range []string{"No reply from server received", "authentication failed", "Traceback", "Error signing " + nvras[0]} {
			if strings.Contains(r.stderr, bad) {
				t.Errorf("sign-rpms: %q in\n%v", bad, r)
			}
		}
		for _, nvra := range nvras {
			signedBy(t, nvra)
		}
		// Fedora's signature is still there beside ours.
		zlib, err := anon.GetRPM(ctx, "zlib-1.2.8-10.fc24.i686")
		if err != nil {
			t.Fatal(err)
		}
		if sigs, err := anon.QueryRPMSigs(ctx, zlib.ID, "fdb19c98"); err != nil || len(sigs) != 1 {
			t.Errorf("zlib: Fedora's signature: %v %v", sigs, err)
		}
		// Again: Koji has these packages' signatures by demo-rsa already;
		// the new headers (another time) are not imported a second time,
		// and the batch succeeds.
		r = k.sigul(t, append([]string{"sign-rpms", "--store-in-koji", "--koji-only", "-k", "koji", "--v3-signature", "demo-rsa"}, nvras[:2]...)...)
		if r.code != 0 {
			t.Errorf("signing again: %v", r)
		}
	})

	t.Run("SignRPMWithNEVRA", func(t *testing.T) {
		// sign-rpm of one package named with its epoch (E:N-V-R.A), with
		// a key that has not signed it yet.
		edkey, _ := k.sigkey(t, "demo-ed25519")
		r := k.sigul(t, "sign-rpm", "--store-in-koji", "--koji-only", "-k", "koji", "demo-ed25519", "1:one-epoch-0.1-1.x86_64")
		if r.code != 0 {
			t.Fatalf("sign-rpm NEVRA: %v", r)
		}
		info, err := anon.GetRPM(ctx, "one-epoch-0.1-1.x86_64")
		if err != nil {
			t.Fatal(err)
		}
		if sigs, err := anon.QueryRPMSigs(ctx, info.ID, edkey); err != nil || len(sigs) != 1 {
			t.Fatalf("sign-rpm: queryRPMSigs(%s) = %v %v", edkey, sigs, err)
		}
		// An NVRA Koji does not know: Sigul's client says so itself.
		r = k.sigul(t, "sign-rpm", "--store-in-koji", "--koji-only", "-k", "koji", "demo-ed25519", "nosuch-1.0-1.x86_64")
		fails(t, r, "sign-rpm of an unknown NVRA", "does not exist in Koji")
	})

	t.Run("FileMissingOnTopurl", func(t *testing.T) {
		// Koji knows the package but the topurl does not serve it: the
		// bridge's download fails, the server answers KOJI_ERROR for that
		// package, and the others are signed.
		victim := nvras[0]
		info, err := anon.GetRPM(ctx, victim)
		if err != nil {
			t.Fatal(err)
		}
		build, _ := anon.GetBuild(ctx, info.BuildID)
		rel := strings.TrimPrefix(koji.RPMURL(hub.TopURL, build, info), hub.TopURL)
		file := filepath.Join(hub.Dir, "topdir", filepath.FromSlash(rel))
		if err := os.Rename(file, file+".away"); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(file+".away", file)
		r := k.sigul(t, "sign-rpms", "--store-in-koji", "--koji-only", "-k", "koji", "demo-rsa", nvras[1], victim, nvras[2])
		// Sigul's client under Python 3 shows the message as a bytes
		// literal: "Error 17: b'bridge: download ...'".
		if r.code == 0 || !strings.Contains(r.stderr, "Error signing "+victim+": Error 17: ") || !strings.Contains(r.stderr, "bridge: download http") || !strings.Contains(r.stderr, "HTTP 404") {
			t.Errorf("the missing file gave no KOJI_ERROR: %v", r)
		}
		if strings.Contains(r.stderr, "No reply from server received") || strings.Contains(r.stderr, "Error signing "+nvras[1]) || strings.Contains(r.stderr, "Error signing "+nvras[2]) {
			t.Errorf("the rest of the batch was not signed: %v", r)
		}
	})

	t.Run("HubDown", func(t *testing.T) {
		// The bridge's instance "down" has no hub: every package gets
		// KOJI_ERROR naming the failed call, each in its own answer.
		r := k.sigul(t, "sign-rpms", "--store-in-koji", "--koji-only", "-k", "down", "--v3-signature", "demo-rsa", nvras[0], nvras[1])
		if r.code == 0 {
			t.Fatalf("sign-rpms through a hub that is down exited 0: %v", r)
		}
		for _, nvra := range nvras[:2] {
			if !regexp.MustCompile(`Error signing ` + regexp.QuoteMeta(nvra) + `: Error 17: b?'?bridge: koji sslLogin: .*connection refused`).MatchString(r.stderr) {
				t.Errorf("%s: no KOJI_ERROR naming sslLogin: %v", nvra, r)
			}
		}
		if strings.Contains(r.stderr, "No reply from server received") {
			t.Errorf("a package got no answer: %v", r)
		}
	})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func download(t *testing.T, url, path string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte{0xed, 0xab, 0xee, 0xdb}) {
		t.Fatalf("GET %s: HTTP %d, %d bytes, %v", url, resp.StatusCode, len(b), err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
