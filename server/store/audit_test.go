package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func appendN(t testing.TB, s *Store, actor string, n int) {
	t.Helper()
	for i := range n {
		_, err := s.AppendAudit(context.Background(), AuditRecord{
			Actor: actor, Operation: "sign-data", KeyName: "k1",
			Detail: fmt.Sprintf(`{"n":%d}`, i), Digest: "sha256:00", Result: "ok",
		})
		if err != nil {
			t.Errorf("%s: AppendAudit %d: %v", actor, i, err)
			return
		}
	}
}

func TestAuditAppendAndVerify(t *testing.T) { forBackends(t, testAuditAppendAndVerify) }

func testAuditAppendAndVerify(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)

	if n, err := s.VerifyAudit(ctx); n != 0 || err != nil {
		t.Errorf("empty log: VerifyAudit = %d, %v", n, err)
	}
	if last, err := s.LastAudit(ctx); err != nil || last.ID != 0 {
		t.Errorf("empty log: LastAudit = %+v, %v", last, err)
	}

	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))
	r1, err := s.AppendAudit(ctx, AuditRecord{
		ID: 99, PrevHash: []byte("ignored"), Hash: []byte("ignored"),
		At: at, Actor: "bob", Operation: "sign-rpm", KeyName: "k1",
		Detail: `{"rpm":"foo-1.0"}`, Digest: "sha256:ab", Result: "ok",
	})
	if err != nil {
		t.Fatal(err)
	}
	if r1.ID != 1 || !bytes.Equal(r1.PrevHash, make([]byte, 32)) || len(r1.Hash) != 32 {
		t.Errorf("first record: id %d prev %x hash %x", r1.ID, r1.PrevHash, r1.Hash)
	}
	if !r1.At.Equal(at) || r1.At.Location() != time.UTC {
		t.Errorf("At = %v, want %v in UTC", r1.At, at)
	}
	r2, err := s.AppendAudit(ctx, AuditRecord{Actor: "alice", Operation: "new-user", Result: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if r2.ID != 2 || !bytes.Equal(r2.PrevHash, r1.Hash) || r2.At.IsZero() {
		t.Errorf("second record: %+v", r2)
	}
	appendN(t, s, "carol", 8)

	n, err := s.VerifyAudit(ctx)
	if n != 10 || err != nil {
		t.Errorf("VerifyAudit = %d, %v; want 10, nil", n, err)
	}
	recs, err := s.ListAudit(ctx, 0, 0)
	if err != nil || len(recs) != 10 {
		t.Fatalf("ListAudit = %d records, %v", len(recs), err)
	}
	if got := recs[0]; got.ID != 1 || !got.At.Equal(at) || got.Detail != r1.Detail || !bytes.Equal(got.Hash, r1.Hash) {
		t.Errorf("ListAudit[0] = %+v, want %+v", got, r1)
	}
	page, err := s.ListAudit(ctx, 1, 2)
	if err != nil || len(page) != 2 || page[0].ID != 2 || page[1].ID != 3 {
		t.Errorf("ListAudit(1, 2) = %+v, %v", page, err)
	}
	last, err := s.LastAudit(ctx)
	if err != nil || last.ID != 10 || !bytes.Equal(last.Hash, recs[9].Hash) {
		t.Errorf("LastAudit = %+v, %v", last, err)
	}
}

// TestAuditHashEncoding checks that moving bytes between adjacent fields
// changes the hash (the encoding is length-prefixed, not concatenated).
func TestAuditHashEncoding(t *testing.T) {
	prev := make([]byte, 32)
	for _, server := range []string{"", "srv"} {
		base := auditHash(prev, 1, "t", server, "ab", "c", "", "", "", "")
		tests := []struct {
			name string
			h    []byte
		}{
			{"shift between actor and operation", auditHash(prev, 1, "t", server, "a", "bc", "", "", "", "")},
			{"shift between at and actor", auditHash(prev, 1, "ta", server, "b", "c", "", "", "", "")},
			{"different id", auditHash(prev, 2, "t", server, "ab", "c", "", "", "", "")},
			{"different prev", auditHash(make([]byte, 31), 1, "t", server, "ab", "c", "", "", "", "")},
			{"empty field moved", auditHash(prev, 1, "t", server, "ab", "", "c", "", "", "")},
			{"result vs digest", auditHash(prev, 1, "t", server, "ab", "c", "", "", "x", "")},
			{"other server", auditHash(prev, 1, "t", server+"x", "ab", "c", "", "", "", "")},
		}
		for _, tt := range tests {
			if bytes.Equal(tt.h, base) {
				t.Errorf("server %q: %s: hash collision", server, tt.name)
			}
		}
		if !bytes.Equal(base, auditHash(prev, 1, "t", server, "ab", "c", "", "", "", "")) {
			t.Error("hash is not deterministic")
		}
	}
	// The server name cannot be moved into the neighbouring fields
	// either.
	if bytes.Equal(auditHash(prev, 1, "t", "s", "ab", "c", "", "", "", ""), auditHash(prev, 1, "ts", "", "ab", "c", "", "", "", "")) ||
		bytes.Equal(auditHash(prev, 1, "t", "s", "ab", "c", "", "", "", ""), auditHash(prev, 1, "t", "", "sab", "c", "", "", "", "")) {
		t.Error("server name shifted into another field keeps the hash")
	}
}

func TestAuditTriggers(t *testing.T) { forBackends(t, testAuditTriggers) }

func testAuditTriggers(t *testing.T, b backend) {
	s, path := b.newStore(t)
	appendN(t, s, "bob", 3)
	db := b.rawDB(t, path)

	z := b.zero32()
	tests := []struct {
		name, sql, want string
	}{
		{"update", `UPDATE audit SET result = 'forged' WHERE id = 2`, "append-only"},
		{"update server", `UPDATE audit SET server = '' WHERE id = 2`, "append-only"},
		{"delete", `DELETE FROM audit WHERE id = 3`, "append-only"},
		{"delete all", `DELETE FROM audit`, "append-only"},
		{"upsert", `INSERT INTO audit VALUES (2, 't', 'a', 'o', '', '', '', '', ` + z + `, ` + z + `, '')
			ON CONFLICT(id) DO UPDATE SET result = 'forged'`, "extend the chain"},
		{"insert with wrong prev_hash", `INSERT INTO audit VALUES (4, 't', 'a', 'o', '', '', '', '', ` + z + `, ` + z + `, '')`, "extend the chain"},
		{"insert skipping an id", `INSERT INTO audit SELECT 5, 't', 'a', 'o', '', '', '', '', hash, ` + z + `, '' FROM audit WHERE id = 3`, "extend the chain"},
	}
	if b.d == dialectPostgres {
		tests = append(tests, struct{ name, sql, want string }{"truncate", `TRUNCATE audit`, "append-only"})
	} else {
		tests = append(tests, struct{ name, sql, want string }{"insert or replace",
			`INSERT OR REPLACE INTO audit VALUES (2, 't', 'a', 'o', '', '', '', '', zeroblob(32), zeroblob(32), '')`, "extend the chain"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.Exec(tt.sql)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %v, want one containing %q", tt.sql, err, tt.want)
			}
		})
	}
	if n, err := s.VerifyAudit(context.Background()); n != 3 || err != nil {
		t.Errorf("VerifyAudit after refused tampering = %d, %v", n, err)
	}
}

func TestAuditTamperDetection(t *testing.T) { forBackends(t, testAuditTamperDetection) }

func testAuditTamperDetection(t *testing.T, b backend) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *Store, path string)
		wantID int64
		reason string
		goodN  int
	}{
		{
			name: "modified field",
			tamper: func(t *testing.T, s *Store, path string) {
				db := b.rawDB(t, path)
				b.unprotectAudit(t, db)
				rawExec(t, db, `UPDATE audit SET detail = '{"n":"forged"}' WHERE id = 3`)
			},
			wantID: 3, reason: "hash mismatch", goodN: 2,
		},
		{
			name: "modified timestamp",
			tamper: func(t *testing.T, s *Store, path string) {
				db := b.rawDB(t, path)
				b.unprotectAudit(t, db)
				rawExec(t, db, `UPDATE audit SET at = '2000-01-01T00:00:00Z' WHERE id = 5`)
			},
			wantID: 5, reason: "hash mismatch", goodN: 4,
		},
		{
			name: "modified field with recomputed hash",
			tamper: func(t *testing.T, s *Store, path string) {
				db := b.rawDB(t, path)
				b.unprotectAudit(t, db)
				r, err := scanRawAudit(db.QueryRow(`SELECT ` + auditColumns + ` FROM audit WHERE id = 3`))
				if err != nil {
					t.Fatal(err)
				}
				r.res = "forged"
				h := auditHash(r.prevHash, r.id, r.at, r.server, r.actor, r.operation, r.keyName, r.detail, r.digest, r.res)
				rawExec(t, db, `UPDATE audit SET result = ?, hash = ? WHERE id = 3`, r.res, h)
			},
			wantID: 4, reason: "prev_hash mismatch", goodN: 3,
		},
		{
			name: "server name blanked",
			tamper: func(t *testing.T, s *Store, path string) {
				db := b.rawDB(t, path)
				b.unprotectAudit(t, db)
				rawExec(t, db, `UPDATE audit SET server = '' WHERE id = 2`)
			},
			wantID: 2, reason: "hash mismatch", goodN: 1,
		},
		{
			name: "server name changed",
			tamper: func(t *testing.T, s *Store, path string) {
				db := b.rawDB(t, path)
				b.unprotectAudit(t, db)
				rawExec(t, db, `UPDATE audit SET server = 'other' WHERE id = 6`)
			},
			wantID: 6, reason: "hash mismatch", goodN: 5,
		},
		{
			name: "deleted record",
			tamper: func(t *testing.T, s *Store, path string) {
				db := b.rawDB(t, path)
				b.unprotectAudit(t, db)
				rawExec(t, db, `DELETE FROM audit WHERE id = 4`)
			},
			wantID: 5, reason: "gap in ids", goodN: 3,
		},
		{
			name: "deleted first record",
			tamper: func(t *testing.T, s *Store, path string) {
				db := b.rawDB(t, path)
				b.unprotectAudit(t, db)
				rawExec(t, db, `DELETE FROM audit WHERE id = 1`)
			},
			wantID: 2, reason: "gap in ids", goodN: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := b.newStore(t)
			appendN(t, s, "bob", 6)
			tt.tamper(t, s, path)

			n, err := s.VerifyAudit(context.Background())
			if !errors.Is(err, ErrAuditChain) {
				t.Fatalf("VerifyAudit = %d, %v; want a broken chain", n, err)
			}
			var ce *AuditChainError
			if !errors.As(err, &ce) || ce.ID != tt.wantID || !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("error %v, want record %d with %q", err, tt.wantID, tt.reason)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("record %d", tt.wantID)) {
				t.Errorf("message %q does not name record %d", err, tt.wantID)
			}
			if n != tt.goodN {
				t.Errorf("verified count = %d, want %d", n, tt.goodN)
			}
		})
	}
}

func TestAuditConcurrentGoroutines(t *testing.T) { forBackends(t, testAuditConcurrentGoroutines) }

func testAuditConcurrentGoroutines(t *testing.T, b backend) {
	s, _ := b.newStore(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { appendN(t, s, fmt.Sprintf("g%d", w), each) })
	}
	wg.Wait()
	if n, err := s.VerifyAudit(context.Background()); n != workers*each || err != nil {
		t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, workers*each)
	}
}

func TestAuditConcurrentHandles(t *testing.T) { forBackends(t, testAuditConcurrentHandles) }

func testAuditConcurrentHandles(t *testing.T, b backend) {
	s1, path := b.newStore(t)
	s2 := b.openStore(t, path)
	const perHandle, each = 4, 25
	var wg sync.WaitGroup
	for i, s := range []*Store{s1, s2} {
		for w := range perHandle {
			wg.Go(func() { appendN(t, s, fmt.Sprintf("h%d-g%d", i, w), each) })
		}
	}
	// Verification runs concurrently with appends and must see a
	// consistent prefix.
	wg.Go(func() {
		for range 5 {
			if _, err := s1.VerifyAudit(context.Background()); err != nil {
				t.Errorf("concurrent VerifyAudit: %v", err)
			}
		}
	})
	wg.Wait()
	for _, s := range []*Store{s1, s2} {
		if n, err := s.VerifyAudit(context.Background()); n != 2*perHandle*each || err != nil {
			t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, 2*perHandle*each)
		}
	}
}

// TestAuditHelperProcess is not a real test: TestAuditConcurrentProcesses
// runs the test binary with it to append from another process.
func TestAuditHelperProcess(t *testing.T) {
	path := os.Getenv("SIGNET_STORE_HELPER_DB")
	if path == "" {
		t.Skip("helper process only")
	}
	n, err := strconv.Atoi(os.Getenv("SIGNET_STORE_HELPER_N"))
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path)
	appendN(t, s, "process-"+strconv.Itoa(os.Getpid()), n)
}

func TestAuditConcurrentProcesses(t *testing.T) { forBackends(t, testAuditConcurrentProcesses) }

func testAuditConcurrentProcesses(t *testing.T, b backend) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	s, path := b.newStore(t)
	const procs, each = 2, 40
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAuditHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SIGNET_STORE_HELPER_DB="+path, "SIGNET_STORE_HELPER_N="+strconv.Itoa(each))
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	appendN(t, s, "parent", each)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	want := (procs + 1) * each
	if n, err := s.VerifyAudit(context.Background()); n != want || err != nil {
		t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, want)
	}
	var actors int
	if err := s.db.QueryRow(`SELECT count(DISTINCT actor) FROM audit`).Scan(&actors); err != nil || actors != procs+1 {
		t.Errorf("distinct actors = %d, %v; want %d", actors, err, procs+1)
	}
}

// TestAuditBatch appends a batch in one transaction: the chain continues
// through it, and a batch with one invalid record records nothing.
func TestAuditBatch(t *testing.T) { forBackends(t, testAuditBatch) }

func testAuditBatch(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	appendN(t, s, "before", 2)
	recs := make([]AuditRecord, 5)
	for i := range recs {
		recs[i] = AuditRecord{Actor: "robot", Operation: "sign-rpms", KeyName: "k", Detail: fmt.Sprintf("pkg-%d", i), Result: "ok"}
	}
	out, err := s.AppendAudits(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range out {
		if r.ID != int64(3+i) {
			t.Errorf("record %d has id %d, want %d", i, r.ID, 3+i)
		}
		if i > 0 && !bytes.Equal(r.PrevHash, out[i-1].Hash) {
			t.Errorf("record %d does not chain to the one before", i)
		}
	}
	if n, err := s.VerifyAudit(ctx); n != 7 || err != nil {
		t.Fatalf("VerifyAudit = %d, %v; want 7, nil", n, err)
	}
	bad := append(recs[:2:2], AuditRecord{Actor: "robot"}) // no operation
	if _, err := s.AppendAudits(ctx, bad); err == nil {
		t.Fatal("a batch with an invalid record was accepted")
	}
	if last, err := s.LastAudit(ctx); err != nil || last.ID != 7 {
		t.Fatalf("after a refused batch LastAudit = %d, %v; want 7", last.ID, err)
	}
}
