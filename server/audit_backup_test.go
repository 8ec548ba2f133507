package server_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// probeOutput is a server.BackupOutput that notes, when the file is
// published, which audit record is the newest.
type probeOutput struct {
	st         *store.Store
	staged     []byte
	published  bool
	lastAtPub  store.AuditRecord
	publishErr error
}

func (o *probeOutput) Stage(data []byte) error { o.staged = data; return nil }

func (o *probeOutput) Publish() error {
	o.published = true
	o.lastAtPub, _ = o.st.LastAudit(context.Background())
	return o.publishErr
}

// TestBackupRecordedBeforeReleased: a key backup changes nothing in the
// database but takes key material out of the token, so its audit record is
// written before the file is published; no record, no file; and a file that
// cannot be published is recorded as a failure as well.
func TestBackupRecordedBeforeReleased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tk := softhsmtest.New(t)
	wk, err := hsm.NewWrapKey()
	if err != nil {
		t.Fatal(err)
	}
	tok := tk.Open(t)
	p := hsm.DefaultWrapProfile(tok.Info())
	tok.Close() // installing needs the security officer
	if _, err := hsm.InstallWrapKey(tk.Config(), p, tk.SOPIN, tk.PIN, wk); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "signet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := &server.Admin{Store: st, Token: tk.Open(t), TokenName: tk.Label, PIN: tk.PIN, KDF: cheapKDF, Actor: "tester@host"}
	if _, err := a.GenerateKey(ctx, server.NewKeyRequest{Name: "bk", Type: hsm.ECDSAP256, Backup: true, BackupProfile: p}); err != nil {
		t.Fatal(err)
	}

	// Published only once recorded.
	o := &probeOutput{st: st}
	data, err := a.BackupKey(ctx, "bk", p, "bk.backup", o)
	if err != nil || len(data) == 0 || string(o.staged) != string(data) {
		t.Fatalf("backup: %d bytes, staged %d, %v", len(data), len(o.staged), err)
	}
	if !o.published || o.lastAtPub.Operation != "key-backup" || o.lastAtPub.Result != "ok" {
		t.Fatalf("when the file was published the newest record was %+v (published %v); want the backup's", o.lastAtPub, o.published)
	}

	// A file that cannot be published: the step is recorded as failed too.
	o = &probeOutput{st: st, publishErr: errors.New("disk full")}
	if _, err := a.BackupKey(ctx, "bk", p, "bk2.backup", o); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("backup with an unpublishable file: %v", err)
	}
	if last, err := st.LastAudit(ctx); err != nil || last.Operation != "key-backup" || !strings.Contains(last.Result, "disk full") {
		t.Fatalf("newest record %+v, %v; want the backup's failure", last, err)
	}

	// No record, no file.
	before, err := st.LastAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failAuditInserts(t, st.Path())
	o = &probeOutput{st: st}
	data, err = a.BackupKey(ctx, "bk", p, "bk3.backup", o)
	if err == nil || data != nil || o.published {
		t.Fatalf("backup without its record: %d bytes, published %v, err %v", len(data), o.published, err)
	}
	if !strings.Contains(err.Error(), "key-backup was not done") {
		t.Errorf("error %q does not say the backup was not done", err)
	}
	if last, err := st.LastAudit(ctx); err != nil || last.ID != before.ID {
		t.Errorf("audit log moved from %d to %d (%v)", before.ID, last.ID, err)
	}
}
