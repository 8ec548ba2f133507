package server_test

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	sx509 "github.com/signet-project/signet/formats/x509"
	"github.com/signet-project/signet/server"
)

// failAuditInserts makes every later append to the audit table fail, as a
// full disk or a broken database would, behind the store's back.
func failAuditInserts(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_refused BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
}

// TestNoRecordNoEffect: an administrative change and its audit record are
// one transaction. When the record cannot be written, the change is not
// made: over the network (grant-key-access, new-user, delete-user) and in
// the ceremony (user add, key grant).
func TestNoRecordNoEffect(t *testing.T) {
	t.Parallel()
	f := newOps(t)
	ctx := context.Background()
	rootPW := map[string]string{"password": "root pw"}
	before, err := f.a.Store.LastAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failAuditInserts(t, f.a.Store.Path())

	// serve sends a request that must be dropped: no reply, since none
	// can be recorded.
	serve := func(op, user string, fields, secrets map[string]string) {
		t.Helper()
		r := &server.Request{Op: op, User: user, CN: user, Fields: map[string][]byte{}, Secrets: map[string][]byte{}}
		for k, v := range fields {
			r.Fields[k] = []byte(v)
		}
		for k, v := range secrets {
			r.Secrets[k] = []byte(v)
		}
		if resp, err := f.h.Serve(ctx, r); !errors.Is(err, server.ErrDrop) {
			t.Errorf("%s without its audit record: reply %+v, err %v; want the request dropped", op, resp, err)
		}
	}
	serve("grant-key-access", "alice", fieldsName("key", "fedora", "name", "bob"),
		map[string]string{"passphrase": "alice pass", "new-passphrase": "bob pass"})
	if _, err := f.a.Store.GetAccess(ctx, "fedora", "bob"); err == nil {
		t.Error("grant-key-access left bob's access without an audit record")
	}
	serve("new-user", "root", fieldsName("name", "carol"), rootPW)
	if _, err := f.a.Store.GetUser(ctx, "carol"); err == nil {
		t.Error("new-user added carol without an audit record")
	}
	serve("delete-user", "root", fieldsName("name", "bob"), rootPW)
	if _, err := f.a.Store.GetUser(ctx, "bob"); err != nil {
		t.Errorf("delete-user removed bob without an audit record: %v", err)
	}

	if err := f.a.AddUser(ctx, "dave", false, nil); err == nil {
		t.Error("user add succeeded without an audit record")
	}
	if _, err := f.a.Store.GetUser(ctx, "dave"); err == nil {
		t.Error("user add left dave without an audit record")
	}
	if err := f.a.Grant(ctx, "fedora", "bob", []byte("bob pass"), false); err == nil {
		t.Error("key grant succeeded without an audit record")
	}
	if _, err := f.a.Store.GetAccess(ctx, "fedora", "bob"); err == nil {
		t.Error("key grant left bob's access without an audit record")
	}
	if last, err := f.a.Store.LastAudit(ctx); err != nil || last.ID != before.ID {
		t.Errorf("audit log moved from %d to %d (%v) though every append failed", before.ID, last.ID, err)
	}
}

// TestNoRecordNoEffectCertificates: the ceremony's certificate steps. A
// certificate made and stored (x509-ca, x509) or an OpenPGP certificate
// remade commits with its record, so neither is stored when the record
// cannot be written; a certificate request, which changes nothing but is a
// signature by the key, is not returned without its record.
func TestNoRecordNoEffectCertificates(t *testing.T) {
	t.Parallel()
	f := newOps(t)
	ctx := context.Background()
	ca := sx509.Request{Subject: pkix.Name{CommonName: "Test CA"}, Validity: 24 * time.Hour, PathLen: -1}
	if _, err := f.a.SelfSignedCA(ctx, "x509", "root", ca); err != nil {
		t.Fatal(err)
	}
	k, err := f.a.Store.GetKey(ctx, "fedora")
	if err != nil {
		t.Fatal(err)
	}
	before, err := f.a.Store.LastAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failAuditInserts(t, f.a.Store.Path())

	refused := func(err error) bool { return err != nil && strings.Contains(err.Error(), "audit refused by the test") }
	if c, err := f.a.SelfSignedCA(ctx, "x509", "root2", ca); !refused(err) || c != nil {
		t.Errorf("x509-ca without its record: certificate returned %v, err %v", c != nil, err)
	}
	if _, err := f.a.Store.GetCertificate(ctx, "x509", "root2"); err == nil {
		t.Error("x509-ca stored a certificate without an audit record")
	}
	leaf := sx509.Request{Subject: pkix.Name{CommonName: "Signer"}, Validity: time.Hour, Kind: sx509.CodeSigning}
	if c, err := f.a.IssueCertificate(ctx, "x509", "root", "fedora", "leaf", leaf); !refused(err) || c != nil {
		t.Errorf("x509 without its record: certificate returned %v, err %v", c != nil, err)
	}
	if _, err := f.a.Store.GetCertificate(ctx, "fedora", "leaf"); err == nil {
		t.Error("x509 stored a certificate without an audit record")
	}
	if c, err := f.a.OpenPGPCertificate(ctx, "fedora", []string{"Other <o@example.org>"}); !refused(err) || c != nil {
		t.Errorf("openpgp --uid without its record: %d bytes, %v", len(c), err)
	}
	if k2, err := f.a.Store.GetKey(ctx, "fedora"); err != nil || !bytes.Equal(k2.PGPCertificate, k.PGPCertificate) {
		t.Errorf("openpgp --uid changed the stored certificate without an audit record (%v)", err)
	}
	if der, err := f.a.CertificateRequest(ctx, "x509", pkix.Name{CommonName: "x509.example.org"}, nil); !refused(err) || der != nil {
		t.Errorf("csr without its record: %d bytes, %v", len(der), err)
	}
	if last, err := f.a.Store.LastAudit(ctx); err != nil || last.ID != before.ID {
		t.Errorf("audit log moved from %d to %d (%v) though every append failed", before.ID, last.ID, err)
	}
}
