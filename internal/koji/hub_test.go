package koji_test

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/koji"
	"github.com/signet-project/signet/internal/kojitest"
)

// sigHeader returns the bytes of an RPM's signature header, magic to
// padding, as addRPMSig takes them.
func sigHeader(t *testing.T, rpm []byte) []byte {
	t.Helper()
	const lead = 96
	if len(rpm) < lead+16 {
		t.Fatal("RPM too short")
	}
	h := rpm[lead:]
	n := binary.BigEndian.Uint32(h[8:12])
	size := binary.BigEndian.Uint32(h[12:16])
	end := 16 + int(n)*16 + int(size)
	end = (end + 7) &^ 7
	if end > len(h) {
		t.Fatal("signature header runs past the file")
	}
	return h[:end]
}

// TestRealHub runs the client against upstream's Koji hub.
func TestRealHub(t *testing.T) {
	hub := kojitest.Start(t, kojitest.Options{})
	ctx := context.Background()
	path := filepath.Join(artifacts.RPMUtilsTestdata(t), "simple-1.0.1-1.i386.rpm")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hub.AddTag(t, "candidate", "simple")
	nvr := hub.ImportRPM(t, path)
	hub.TagBuild(t, "candidate", nvr)
	hub.AddUser(t, "alice", "sign")

	anon, err := koji.New(hub.URL, koji.Options{TLS: mustTLS(t, hub.CA, "")})
	if err != nil {
		t.Fatal(err)
	}
	rpm, err := anon.GetRPM(ctx, "simple-1.0.1-1.i386")
	if err != nil {
		t.Fatal(err)
	}
	if rpm.Name != "simple" || rpm.Version != "1.0.1" || rpm.Release != "1" || rpm.Arch != "i386" || rpm.Epoch != nil || rpm.Size != int64(len(data)) {
		t.Fatalf("getRPM: %+v (file is %d bytes)", rpm, len(data))
	}
	byNVRA, err := anon.GetRPM(ctx, koji.NVRA{Name: "simple", Version: "1.0.1", Release: "1", Arch: "i386"})
	if err != nil || byNVRA.ID != rpm.ID {
		t.Fatalf("getRPM by map: %+v %v", byNVRA, err)
	}
	if _, err := anon.GetRPM(ctx, "nosuch-1-1.noarch"); !koji.IsNotFound(err) {
		t.Fatalf("unknown NVRA: %v", err)
	}
	build, err := anon.GetBuild(ctx, rpm.BuildID)
	if err != nil || build.NVR != nvr {
		t.Fatalf("getBuild: %+v %v", build, err)
	}
	rpms, err := anon.ListRPMs(ctx, build.ID)
	if err != nil || len(rpms) != 1 || rpms[0].ID != rpm.ID {
		t.Fatalf("listRPMs: %+v %v", rpms, err)
	}

	// The topurl serves the file where RPMURL says, with the MD5 Koji lists.
	resp, err := http.Get(koji.RPMURL(hub.TopURL, build, rpm))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(got) != string(data) {
		t.Fatalf("download %s: HTTP %d, %d bytes, %v", koji.RPMURL(hub.TopURL, build, rpm), resp.StatusCode, len(got), err)
	}

	// A fault carries the method and the hub's message: bridge has no sign
	// permission of its own.
	self := hub.Client(t, "bridge")
	if err := self.SSLLogin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	hdr := sigHeader(t, data)
	err = self.AddRPMSig(ctx, rpm.ID, hdr)
	var f *koji.Fault
	if !errors.As(err, &f) || f.Method != "addRPMSig" || f.Code == 0 {
		t.Fatalf("addRPMSig without permission: %v", err)
	}
	if err := self.Logout(ctx); err != nil {
		t.Fatal(err)
	}

	if !strings.Contains(f.String, "permission") {
		t.Fatalf("addRPMSig as bridge itself: %v, want a permission fault", err)
	}

	// import stored the package's own (unsigned) header: sigkey "".
	sigs, err := anon.QueryRPMSigs(ctx, rpm.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(hdr)
	if len(sigs) != 1 || sigs[0].RPMID != rpm.ID || sigs[0].SigKey != "" || sigs[0].SigHash != hex.EncodeToString(sum[:]) {
		t.Fatalf("queryRPMSigs: %+v, want the header's MD5 %x", sigs, sum)
	}

	// Proxy login as alice, as Sigul's bridge does: the call now passes
	// the permission check and the hub refuses only the duplicate.
	proxy := hub.Client(t, "bridge")
	if err := proxy.SSLLogin(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	defer proxy.Logout(ctx)
	err = proxy.AddRPMSig(ctx, rpm.ID, hdr)
	if !errors.As(err, &f) || !strings.Contains(f.String, "already exists") {
		t.Fatalf("addRPMSig as alice: %v, want the duplicate refused", err)
	}
	// The session's later calls are still accepted (call numbers rise).
	if _, err := proxy.GetRPM(ctx, rpm.ID); err != nil {
		t.Fatal(err)
	}

	// tagBuild makes a task; without kojid it stays free, but it exists.
	signer := hub.Client(t, "signer")
	if err := signer.SSLLogin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	defer signer.Logout(ctx)
	hub.AddTag(t, "done", "simple")
	task, err := signer.TagBuild(ctx, "done", nvr)
	if err != nil {
		t.Fatal(err)
	}
	info, err := anon.GetTaskInfo(ctx, task)
	if err != nil || info.ID != task || info.Method != "tagBuild" {
		t.Fatalf("getTaskInfo: %+v %v", info, err)
	}
}

func mustTLS(t *testing.T, ca, cert string) *tls.Config {
	t.Helper()
	c, err := koji.TLSConfig(ca, cert, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
