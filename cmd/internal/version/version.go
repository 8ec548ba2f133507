// Package version gives every signet program its --version (version,
// commit and Go version) and a hidden gen-docs command that writes the
// program's man pages and shell completions from its own cobra command
// tree, so that packaged documentation never drifts from --help.
package version

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Set at link time by packagers (dist/signet.spec):
//
//	-ldflags "-X github.com/signet-project/signet/cmd/internal/version.version=1.2.3
//	          -X github.com/signet-project/signet/cmd/internal/version.commit=<hash>"
//
// Without them the module version and VCS revision recorded by the Go
// toolchain are used, when there are any.
var (
	version string
	commit  string
)

// Info is what --version prints.
type Info struct {
	Version, Commit, GoVersion, Platform string
	Modified                             bool // built from a work tree with uncommitted changes
}

// Get returns the program's version information.
func Get() Info {
	i := Info{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		i.GoVersion = bi.GoVersion
		if i.Version == "" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.modified":
				i.Modified = s.Value == "true" && commit == ""
			}
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	if i.Modified {
		i.Commit += "+modified"
	}
	return i
}

// Text is the --version output of program name.
func (i Info) Text(name string) string {
	return fmt.Sprintf("%s version %s\ncommit %s\nbuilt with %s %s\n", name, i.Version, i.Commit, i.GoVersion, i.Platform)
}

// Setup gives root a --version flag and the hidden gen-docs command.
func Setup(root *cobra.Command) {
	i := Get()
	root.Version = i.Version
	// cobra reads this as a template; the text has no actions in it.
	root.SetVersionTemplate(i.Text(root.Name()))
	root.AddCommand(genDocsCmd(root))
}

func genDocsCmd(root *cobra.Command) *cobra.Command {
	var manDir, complDir string
	c := &cobra.Command{
		Use:    "gen-docs",
		Short:  "Write man pages and shell completions (for packagers)",
		Hidden: true,
		Args:   cobra.NoArgs,
		// The root's hooks load configuration; documentation needs none.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if manDir == "" && complDir == "" {
				return fmt.Errorf("gen-docs: give --man DIR, --completions DIR or both")
			}
			if manDir != "" {
				if err := WriteMan(root, manDir); err != nil {
					return err
				}
			}
			if complDir != "" {
				if err := WriteCompletions(root, complDir); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&manDir, "man", "", "write section 1 man pages for every command into this directory")
	c.Flags().StringVar(&complDir, "completions", "", "write bash/NAME, zsh/_NAME and fish/NAME.fish into this directory")
	return c
}

// WriteMan writes a section 1 man page for root and each of its visible
// subcommands into dir. SOURCE_DATE_EPOCH, when set, dates them (so that
// package builds are reproducible).
func WriteMan(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return doc.GenManTree(root, &doc.GenManHeader{
		Title:   "",
		Section: "1",
		Source:  "signet " + Get().Version,
		Manual:  "signet manual",
	}, dir)
}

// WriteCompletions writes bash, zsh and fish completion scripts for root
// under dir, in the layout their installation directories use.
func WriteCompletions(root *cobra.Command, dir string) error {
	name := root.Name()
	for _, f := range []struct {
		path string
		gen  func(*os.File) error
	}{
		{filepath.Join(dir, "bash", name), func(w *os.File) error { return root.GenBashCompletionV2(w, true) }},
		{filepath.Join(dir, "zsh", "_"+name), func(w *os.File) error { return root.GenZshCompletion(w) }},
		{filepath.Join(dir, "fish", name+".fish"), func(w *os.File) error { return root.GenFishCompletion(w, true) }},
	} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		out, err := os.Create(f.path)
		if err != nil {
			return err
		}
		err = f.gen(out)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", f.path, err)
		}
	}
	return nil
}
