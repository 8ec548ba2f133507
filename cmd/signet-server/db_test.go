package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	postgrestest "github.com/signet-project/signet/postgres-test"
	"github.com/signet-project/signet/server/store"
)

// runCmd runs signet-server in-process and returns its output.
func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCmd(t, args...)
	if err != nil {
		t.Fatalf("signet-server %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestDBMigrate moves a SQLite deployment made by signet-server's own
// commands to PostgreSQL with `db migrate`, then uses it there.
func TestDBMigrate(t *testing.T) {
	c := postgrestest.Start(t)
	dir := t.TempDir()
	t.Chdir(dir)
	sqlite := filepath.Join(dir, "signet.db")
	for _, u := range []string{"alice", "bob", "carol"} {
		mustRun(t, "user", "add", u, "--database", sqlite)
	}
	mustRun(t, "user", "delete", "bob", "--database", sqlite)
	before := mustRun(t, "audit", "verify", "--database", sqlite)
	last := regexp.MustCompile(`last record: (\d+:[0-9a-f]{64})`).FindStringSubmatch(before)
	if last == nil {
		t.Fatalf("audit verify printed no last record:\n%s", before)
	}

	url := c.URL(c.CreateDatabase(t))
	out := mustRun(t, "db", "migrate", "--from", "sqlite:"+sqlite, "--to", url)
	for _, want := range []string{"2 users, 0 keys, 0 key accesses, 0 certificates, 4 audit records",
		"contents equal, audit chain OK: 4 records, ends at the source's " + last[1], "audit chain OK: 5 records"} {
		if !strings.Contains(out, want) {
			t.Errorf("db migrate output lacks %q:\n%s", want, out)
		}
	}
	// The deployment works on PostgreSQL: same users, the chain verifies
	// through the same command, new changes extend it.
	if got := mustRun(t, "user", "list", "--database", url); got != "alice\ncarol\n" {
		t.Errorf("user list on PostgreSQL = %q", got)
	}
	mustRun(t, "user", "add", "dave", "--database", url)
	if got := mustRun(t, "audit", "verify", "--database", url); !strings.Contains(got, "audit chain OK: 6 records") {
		t.Errorf("audit verify on PostgreSQL:\n%s", got)
	}
	show := mustRun(t, "audit", "show", "--database", url)
	if !strings.Contains(show, `"operation":"db-migrate"`) {
		t.Errorf("no db-migrate record:\n%s", show)
	}

	// A second migration into the now non-empty target is refused.
	if out, err := runCmd(t, "db", "migrate", "--from", "sqlite:"+sqlite, "--to", url); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("migration into a non-empty database: %v\n%s", err, out)
	}
	// Bad locations.
	for _, args := range [][]string{
		{"--from", sqlite, "--to", url},
		{"--from", "sqlite:" + filepath.Join(dir, "missing.db"), "--to", c.URL(c.CreateDatabase(t))},
		{"--from", "sqlite:" + sqlite, "--to", "sqlite:" + sqlite},
	} {
		if out, err := runCmd(t, append([]string{"db", "migrate"}, args...)...); err == nil {
			t.Errorf("db migrate %v succeeded:\n%s", args, out)
		}
	}
}

// TestDatabasePassword: a password inside the URL is refused without being
// echoed; from database_password_file (and --password-file) it logs in.
func TestDatabasePassword(t *testing.T) {
	c := postgrestest.Start(t)
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("PGPASSFILE", filepath.Join(dir, "no-passfile"))
	db := c.CreateDatabase(t)
	const pw = "pg pass 9817"
	c.CreateRole(t, "signet", pw)
	if _, err := c.Psql(db, "GRANT ALL ON SCHEMA public TO signet"); err != nil {
		t.Fatal(err)
	}
	url := c.TCPURL("signet", db)
	withPW := strings.Replace(url, "signet@", "signet:"+strings.ReplaceAll(pw, " ", "%20")+"@", 1)
	out, err := runCmd(t, "user", "add", "alice", "--database", withPW)
	if err == nil || !strings.Contains(err.Error(), "password") || strings.Contains(err.Error()+out, "9817") {
		t.Fatalf("URL with a password: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "user", "add", "alice", "--database", url); err == nil {
		t.Fatal("logged in without the password")
	}
	pwFile := filepath.Join(dir, "db.secret")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "server.toml")
	if err := os.WriteFile(cfg, []byte("database = \""+url+"\"\ndatabase_password_file = \""+pwFile+"\"\n[server]\nname = \"signet-test-1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "user", "add", "alice", "--config", cfg)
	show := mustRun(t, "audit", "show", "--config", cfg)
	if !strings.Contains(show, `"server":"signet-test-1","actor"`) || !strings.Contains(show, `"operation":"user-add"`) {
		t.Errorf("audit show:\n%s", show)
	}
	st, err := store.OpenWith(context.Background(), url, store.Options{Password: []byte(pw)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.ListAudit(context.Background(), 0, 0)
	if err != nil || len(recs) != 1 || recs[0].Server != "signet-test-1" {
		t.Errorf("audit records = %+v, %v; want one from server signet-test-1", recs, err)
	}
	// A world-readable password file is refused.
	if err := os.Chmod(pwFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, "user", "list", "--config", cfg); err == nil {
		t.Errorf("a world-readable password file was used:\n%s", out)
	}
	// db migrate's --password-file, into a second database.
	if err := os.Chmod(pwFile, 0o600); err != nil {
		t.Fatal(err)
	}
	db2 := c.CreateDatabase(t)
	if _, err := c.Psql(db2, "GRANT ALL ON SCHEMA public TO signet"); err != nil {
		t.Fatal(err)
	}
	sqlite := filepath.Join(dir, "old.db")
	mustRun(t, "user", "add", "zed", "--database", sqlite)
	out = mustRun(t, "db", "migrate", "--from", "sqlite:"+sqlite, "--to", c.TCPURL("signet", db2), "--password-file", pwFile)
	if !strings.Contains(out, "1 users") || strings.Contains(out, "9817") {
		t.Errorf("db migrate with --password-file:\n%s", out)
	}
}
