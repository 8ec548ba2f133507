package robo

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOutputDir: a destination is made inside output_dir, and one that a
// symbolic link inside output_dir leads out of is refused.
func TestOutputDir(t *testing.T) {
	base, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(base, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(base, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "real"), filepath.Join(base, "alias")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"escape", "escape/deeper"} {
		if dir, err := outputDir(base, rel); err == nil {
			t.Errorf("destination %q through a link out of output_dir: accepted as %s", rel, dir)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "deeper")); err == nil {
		t.Error("the refused destination's directory was made outside output_dir")
	}
	for rel, want := range map[string]string{"": base, "f43/updates": filepath.Join(base, "f43/updates"), "alias": filepath.Join(base, "real")} {
		dir, err := outputDir(base, rel)
		rwant, _ := filepath.EvalSymlinks(want)
		if err != nil || dir != rwant {
			t.Errorf("outputDir(%q) = %q, %v; want %q", rel, dir, err, rwant)
		}
	}
}
