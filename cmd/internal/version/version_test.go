package version

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func tree() *cobra.Command {
	root := &cobra.Command{Use: "prog", Short: "a program",
		PersistentPreRunE: func(*cobra.Command, []string) error { return os.ErrPermission }}
	grp := &cobra.Command{Use: "key", Short: "keys"}
	grp.AddCommand(&cobra.Command{Use: "list", Short: "list keys", Long: "list prints every key.", Run: func(*cobra.Command, []string) {}})
	root.AddCommand(grp)
	Setup(root)
	return root
}

func TestVersionFlag(t *testing.T) {
	root := tree()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "prog version ") || !strings.HasPrefix(lines[1], "commit ") ||
		!strings.Contains(lines[2], runtime.Version()) {
		t.Fatalf("--version printed %q", out.String())
	}
}

func TestLinkTimeValues(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "1.2.3", "0123abcd"
	i := Get()
	if i.Version != "1.2.3" || i.Commit != "0123abcd" || i.GoVersion != runtime.Version() {
		t.Fatalf("Get() = %+v", i)
	}
}

func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	root := tree()
	root.SetArgs([]string{"gen-docs", "--man", filepath.Join(dir, "man"), "--completions", filepath.Join(dir, "compl")})
	if err := root.Execute(); err != nil { // the root's failing hook must not run
		t.Fatal(err)
	}
	for _, f := range []string{"man/prog.1", "man/prog-key.1", "man/prog-key-list.1", "man/prog-completion-bash.1",
		"compl/bash/prog", "compl/zsh/_prog", "compl/fish/prog.fish"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "man/prog-key-list.1"))
	for _, want := range []string{"list prints every key.", "Nov 2023", ".SH NAME"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("prog-key-list.1 lacks %q:\n%s", want, page)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "man/prog-gen-docs.1")); err == nil {
		t.Error("the hidden gen-docs command got a man page")
	}
	fish, _ := os.ReadFile(filepath.Join(dir, "compl/fish/prog.fish"))
	if !bytes.Contains(fish, []byte("prog")) {
		t.Errorf("fish completion does not name the program")
	}
}
