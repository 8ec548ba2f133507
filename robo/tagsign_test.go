package robo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/signet-project/signet/internal/koji"
	"github.com/signet-project/signet/internal/kojitest"
	"github.com/signet-project/signet/internal/testenv"
)

// TestTagSign is robosignatory's TagSigner against the real thing: a real
// Koji hub with its builder daemon (so moveBuild tasks run), a real
// RabbitMQ, and signet's real bridge and server, the bridge configured
// with the hub as Koji instance "koji". The test publishes buildsys.tag
// as Fedora's messaging plugin would.
//
//   - A build tagged into the signing tag ends in the destination tag with
//     every RPM signed: Koji lists the key's signature of each
//     (queryRPMSigs), and the copies writeSignedRPM made, fetched from
//     the topurl, pass rpmkeys --checksig with the key.
//   - The same message again changes nothing: no signature, no task, no
//     tag.
//   - A build whose signing fails (a wrong passphrase) stays in its
//     signing tag, Koji holds no signature, and FAILURE is published.
//   - Side tags: a build a trusted tagger tagged is signed and moved to
//     the side tag's destination; one an untrusted user tagged is left
//     with a FAILURE (Koji's own history says who tagged, not the
//     message).
//   - A tagging into a tag no rule names is acknowledged, unanswered.
func TestTagSign(t *testing.T) {
	testenv.SkipShort(t, "the real Koji hub, RabbitMQ and signet's programs")
	kojitest.ThirdParty(t)
	testenv.MustHave(t, "rpmbuild", "rpmkeys")
	t0 := time.Now()
	hub := kojitest.Start(t, kojitest.Options{Kojid: true})
	w := newWorldEnv(t, "SIGNET_KOJI_HUB="+hub.URL, "SIGNET_KOJI_TOPURL="+hub.TopURL,
		"SIGNET_KOJI_CERT="+hub.Cert("bridge"), "SIGNET_KOJI_CA="+hub.CA)
	t.Logf("Koji hub with kojid, broker and devstack up in %s", time.Since(t0).Round(time.Second))
	// The bridge imports signatures logged in on behalf of the signet
	// user (alice); signet-robo writes copies and moves builds as signer
	// (permissions sign and tag), with its own certificate.
	hub.AddUser(t, "alice", "sign")
	const (
		from, to, badFrom = "f43-signing-pending", "f43-updates-testing", "f43-ed-signing-pending"
		rk                = "org.fedoraproject.test.buildsys.tag"
	)
	// A side tag of the first rule: pattern <to>-build-side-<seq_id>,
	// builds tagged into <sidetag>-signing-pending by signer (trusted)
	// go to <sidetag>-testing.
	const side = to + "-build-side-7"
	for _, tag := range []string{from, to, badFrom, "f43-other", side + "-signing-pending", side + "-testing"} {
		hub.AddTag(t, tag, "hello")
	}
	rpmDir := buildHello(t, "1", "2", "3", "4", "5")
	for _, rel := range []string{"1", "2", "3", "4", "5"} {
		paths, _ := filepath.Glob(filepath.Join(rpmDir, "*-1.0-"+rel+".*.rpm"))
		if len(paths) != 3 {
			t.Fatalf("rpmbuild made %v for release %s", paths, rel)
		}
		hub.CLI(t, append([]string{"import", "--create-build"}, paths...)...)
	}
	hub.TagBuild(t, from, "hello-1.0-1")
	hub.TagBuild(t, badFrom, "hello-1.0-2")
	hub.TagBuild(t, "f43-other", "hello-1.0-3")

	rsa := w.publicKey(t, "demo-rsa")
	rsaSigkey, edSigkey := sigkey(t, rsa), sigkey(t, w.publicKey(t, "demo-ed25519"))
	wrongPass := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrongPass, []byte("not the passphrase"), 0o600)
	w.startRobo(t, fmt.Sprintf(`[amqp]
queue = "tagsign"
dead_letter_exchange = "tagsign.dlx"
dead_letter_queue = "tagsign.dead"
retry_delay = "1s"
[tag_sign]
enabled = true
routing_keys = [%[1]q]
move_timeout = "5m"
[[tag_sign.instances]]
name = "primary"
client_instance = "koji"
hub = %[2]q
cert = %[3]q
ca = %[4]q
[[tag_sign.rules]]
from = %[5]q
to = %[6]q
key = "demo-rsa"
passphrase_file = %[7]q
sigkey = %[8]q
[tag_sign.rules.sidetags]
pattern = "<to>-build-side-<seq_id>"
from = "<sidetag>-signing-pending"
to = "<sidetag>-testing"
trusted_taggers = ["signer"]
[[tag_sign.rules]]
from = %[9]q
to = %[6]q
key = "demo-ed25519"
passphrase_file = %[10]q
sigkey = %[11]q
`, rk, hub.URL, hub.Cert("signer"), hub.CA, from, to, w.passFile, rsaSigkey, badFrom, wrongPass, edSigkey))
	p := w.newPeer(t, "tagsign.finished", rk+".finished")

	kc := hub.Client(t, "signer")
	ctx := context.Background()
	if err := kc.SSLLogin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	defer kc.Logout(ctx)
	build := func(nvr string) *koji.BuildInfo {
		b, err := kc.GetBuild(ctx, nvr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tagMsg := func(b *koji.BuildInfo, tag string) msg {
		return msg{key: rk, id: newUUID(), schema: "koji_fedoramessaging.tag.TagV1", body: jsonBody(t, map[string]any{
			"build_id": b.ID, "name": b.Name, "version": b.Version, "release": b.Release,
			"tag": tag, "tag_id": 1, "instance": "primary", "user": "admin", "owner": b.OwnerName})}
	}
	good, bad, other := build("hello-1.0-1"), build("hello-1.0-2"), build("hello-1.0-3")

	// The build in the signing tag: signed, written, moved.
	start := time.Now()
	m := tagMsg(good, from)
	p.publish(m)
	f := p.waitFinished(1, 10*time.Minute)[0]
	t.Logf("buildsys.tag to SUCCESS in %s", time.Since(start).Round(time.Millisecond))
	if status(f) != "SUCCESS" || f["signed"] != float64(3) || f["to_tag"] != to || f["_routing_key"] != rk+".finished" {
		t.Fatalf("finished %v", f)
	}
	if got := buildTags(t, kc, good.ID); !slices.Equal(got, []string{to}) {
		t.Fatalf("hello-1.0-1 is in %v, want only %s", got, to)
	}
	rpms, err := kc.ListRPMs(ctx, good.ID)
	if err != nil || len(rpms) != 3 {
		t.Fatalf("listRPMs: %v %v", rpms, err)
	}
	db := t.TempDir()
	pub := filepath.Join(db, "demo-rsa.asc")
	os.WriteFile(pub, rsa, 0o644)
	testenv.Run(t, db, nil, "rpmkeys", "--dbpath", db, "--import", pub)
	for i := range rpms {
		r := &rpms[i]
		s, err := kc.QueryRPMSigs(ctx, r.ID, rsaSigkey)
		if err != nil || len(s) != 1 {
			t.Fatalf("queryRPMSigs %s %s: %v %v", r.NVRA(), rsaSigkey, s, err)
		}
		file := filepath.Join(db, r.NVRA()+".rpm")
		fetch(t, koji.SignedRPMURL(hub.TopURL, good, r, rsaSigkey), file)
		got := testenv.Run(t, db, nil, "rpmkeys", "--dbpath", db, "--checksig", "-v", file)
		if !strings.Contains(got, "Header V4 RSA/SHA256 Signature, key ID "+rsaSigkey+": OK") || strings.Contains(got, "NOKEY") || strings.Contains(got, "BAD") {
			t.Fatalf("rpmkeys --checksig %s (writeSignedRPM's copy):\n%s", r.NVRA(), got)
		}
	}
	tasks := countTasks(t, kc)
	// Every signature row Koji holds (import leaves one for the unsigned
	// header, sigkey ""), to compare after the redelivery.
	allSigs := func() string {
		var b strings.Builder
		for i := range rpms {
			s, err := kc.QueryRPMSigs(ctx, rpms[i].ID, "")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s: %v\n", rpms[i].NVRA(), s)
		}
		return b.String()
	}
	sigsBefore := allSigs()

	// The same message again: nothing changes.
	p.reset()
	p.publish(m)
	f = p.waitFinished(1, 5*time.Minute)[0]
	if status(f) != "SUCCESS" || f["signed"] != float64(0) {
		t.Fatalf("redelivery: finished %v", f)
	}
	if after := allSigs(); after != sigsBefore {
		t.Fatalf("the redelivery changed Koji's signatures:\nbefore:\n%safter:\n%s", sigsBefore, after)
	}
	if n := countTasks(t, kc); n != tasks {
		t.Fatalf("the redelivery made %d Koji tasks", n-tasks)
	}
	if got := buildTags(t, kc, good.ID); !slices.Equal(got, []string{to}) {
		t.Fatalf("after the redelivery hello-1.0-1 is in %v", got)
	}

	// Signing fails (wrong passphrase): the build stays, FAILURE.
	p.reset()
	p.publish(tagMsg(bad, badFrom))
	f = p.waitFinished(1, 5*time.Minute)[0]
	if status(f) != "FAILURE" || !strings.Contains(fmt.Sprint(f["failure-message"]), "sign-rpms") {
		t.Fatalf("failing build: finished %v", f)
	}
	if got := buildTags(t, kc, bad.ID); !slices.Equal(got, []string{badFrom}) {
		t.Fatalf("hello-1.0-2 is in %v, want it left in %s", got, badFrom)
	}
	badRPMs, err := kc.ListRPMs(ctx, bad.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range badRPMs {
		if s, err := kc.QueryRPMSigs(ctx, r.ID, edSigkey); err != nil || len(s) != 0 {
			t.Fatalf("%s: signatures %v %v after a failed signing", r.NVRA(), s, err)
		}
	}

	// Side tags: a build signer tagged (a tagBuild task, so Koji's
	// history names signer) is signed and moved to the side tag's
	// testing tag; one admin tagged (not a trusted tagger) is left alone
	// with a FAILURE.
	trustedB, untrustedB := build("hello-1.0-4"), build("hello-1.0-5")
	task, err := kc.TagBuild(ctx, side+"-signing-pending", trustedB.ID)
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = kc.WaitTask(tctx, task, time.Second)
	cancel()
	if err != nil {
		t.Fatalf("signer's tagBuild: %v", err)
	}
	hub.TagBuild(t, side+"-signing-pending", "hello-1.0-5")
	p.reset()
	p.publish(tagMsg(trustedB, side+"-signing-pending"))
	f = p.waitFinished(1, 10*time.Minute)[0]
	if status(f) != "SUCCESS" || f["signed"] != float64(3) || f["to_tag"] != side+"-testing" {
		t.Fatalf("side tag, trusted tagger: finished %v", f)
	}
	if got := buildTags(t, kc, trustedB.ID); !slices.Equal(got, []string{side + "-testing"}) {
		t.Fatalf("hello-1.0-4 is in %v", got)
	}
	p.reset()
	p.publish(tagMsg(untrustedB, side+"-signing-pending"))
	f = p.waitFinished(1, 5*time.Minute)[0]
	if status(f) != "FAILURE" || !strings.Contains(fmt.Sprint(f["failure-message"]), `by "admin", who is not a trusted tagger`) {
		t.Fatalf("side tag, untrusted tagger: finished %v", f)
	}
	if got := buildTags(t, kc, untrustedB.ID); !slices.Equal(got, []string{side + "-signing-pending"}) {
		t.Fatalf("hello-1.0-5 is in %v", got)
	}

	// A tag no rule names: acknowledged, not answered, not touched.
	p.reset()
	p.publish(tagMsg(other, "f43-other"))
	w.waitQueues(t, map[string]int{"tagsign": 0, "tagsign.retry": 0, "tagsign.dead": 0})
	time.Sleep(time.Second)
	p.mu.Lock()
	n := len(p.finished)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d finished messages for a tag no rule names", n)
	}
	if got := buildTags(t, kc, other.ID); !slices.Equal(got, []string{"f43-other"}) {
		t.Fatalf("hello-1.0-3 is in %v", got)
	}
}

// buildHello builds hello-1.0-REL (a source package and two noarch
// packages) with rpmbuild for each release and returns the directory
// holding them all.
func buildHello(t *testing.T, releases ...string) string {
	t.Helper()
	top := t.TempDir()
	spec := filepath.Join(top, "hello.spec")
	os.WriteFile(spec, []byte(`Name: hello
Version: 1.0
Release: %{rel}
Summary: signet-robo test package
License: MIT
BuildArch: noarch

%description
A package for signet-robo's tag-sign test.

%package doc
Summary: its documentation

%description doc
Documentation.

%install
mkdir -p %{buildroot}/usr/share/hello %{buildroot}/usr/share/doc/hello-doc
echo hello > %{buildroot}/usr/share/hello/hello.txt
echo doc > %{buildroot}/usr/share/doc/hello-doc/README

%files
/usr/share/hello/hello.txt

%files doc
/usr/share/doc/hello-doc/README
`), 0o644)
	out := filepath.Join(top, "out")
	os.Mkdir(out, 0o755)
	for _, rel := range releases {
		testenv.Run(t, top, nil, "rpmbuild", "--quiet", "--nodeps", "-ba",
			"--define", "_topdir "+filepath.Join(top, "rpmbuild"), "--define", "rel "+rel,
			"--define", "debug_package %{nil}", "--define", "_build_id_links none", spec)
	}
	srpms, _ := filepath.Glob(filepath.Join(top, "rpmbuild/SRPMS/*.rpm"))
	rpms, _ := filepath.Glob(filepath.Join(top, "rpmbuild/RPMS/*/*.rpm"))
	for _, p := range append(srpms, rpms...) {
		if err := os.Rename(p, filepath.Join(out, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sigkey is Koji's name for a key's signatures: the key ID's last 8 hex
// digits, lower case.
func sigkey(t *testing.T, armored []byte) string {
	t.Helper()
	kr, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil || len(kr) != 1 {
		t.Fatalf("public key: %v", err)
	}
	return fmt.Sprintf("%08x", uint32(kr[0].PrimaryKey.KeyId))
}

func buildTags(t *testing.T, kc *koji.Client, id int64) []string {
	t.Helper()
	tags, err := (&kojiSession{c: kc}).BuildTags(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tags)
	return tags
}

func countTasks(t *testing.T, kc *koji.Client) int {
	t.Helper()
	v, err := kc.Call(context.Background(), "listTasks")
	if err != nil {
		t.Fatal(err)
	}
	a, ok := v.([]any)
	if !ok {
		t.Fatalf("listTasks: %T", v)
	}
	return len(a)
}

// fetch downloads url to path.
func fetch(t *testing.T, url, path string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
