package store

import (
	"context"
	"testing"
)

// TestKeyBackupFlag: keys.backup is stored and read back, and defaults to
// false for keys added without it (and for rows from schema version 1).
func TestKeyBackupFlag(t *testing.T) { forBackends(t, testKeyBackupFlag) }

func testKeyBackupFlag(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.newStore(t)
	in := testKey("with-backup")
	in.Backup = true
	if _, err := s.AddKey(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddKey(ctx, testKey("without")); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	keys, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		got[k.Name] = k.Backup
	}
	if !got["with-backup"] || got["without"] || len(got) != 2 {
		t.Fatalf("backup flags: %v", got)
	}
	if v, err := s.databaseSchemaVersion(ctx); err != nil || v != schemaVersion() || v < 2 {
		t.Fatalf("schema version %d, %v", v, err)
	}
}
