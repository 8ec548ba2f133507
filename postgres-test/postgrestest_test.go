package postgrestest

import (
	"strings"
	"testing"
)

func TestStartCreateQuery(t *testing.T) {
	c := Start(t)
	db := c.CreateDatabase(t)
	out, err := c.Psql(db, "CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1); SELECT sum(x) FROM t;")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "42" {
		t.Fatalf("sum = %q, want 42", out)
	}
	if !strings.Contains(c.URL(db), "host="+strings.ReplaceAll(c.SocketDir, "/", "%2F")) {
		t.Errorf("URL %s does not name the socket directory %s", c.URL(db), c.SocketDir)
	}
	c.Stop()
	if _, err := c.Psql(db, "SELECT 1"); err == nil {
		t.Fatal("psql still works after Stop")
	}
}
