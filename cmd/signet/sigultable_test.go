package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signet-project/signet/internal/artifacts"
)

// sigulOption is one optparse option of Sigul's client.
type sigulOption struct {
	short, long string
	action      string // store, store_true, count, append
}

// sigulSrc returns Sigul 1.2's client sources from ../shared/third-party,
// skipping the test when that folder is absent (a fresh clone) and
// failing when it is there but the sources are not.
func sigulSrc(t *testing.T) string {
	t.Helper()
	third := filepath.Join(artifacts.Root(), "..", "shared", "third-party")
	if _, err := os.Stat(third); err != nil {
		t.Skipf("../shared/third-party is absent (%v): Sigul's client.py cannot be compared", err)
	}
	src := filepath.Join(third, "sigul", "src")
	for _, f := range []string{"client.py", "utils.py"} {
		if _, err := os.Stat(filepath.Join(src, f)); err != nil {
			t.Fatalf("../shared/third-party is present but Sigul's %s is not: %v", f, err)
		}
	}
	return src
}

var (
	pyDef       = regexp.MustCompile(`(?m)^def (\w+)\(`)
	pyAddOption = regexp.MustCompile(`add_option\(\s*((?:'-[^']*'\s*,\s*)+)`)
	pyOptString = regexp.MustCompile(`'(-[^']*)'`)
	pyAction    = regexp.MustCompile(`^\s*action='(\w+)'`)
	pyHandler   = regexp.MustCompile(`'([a-z-]+)':\s*\((cmd_\w+)\s*,`)
	pyHelper    = regexp.MustCompile(`(?m)^\s*(?:utils\.)?(\w+)\((?:p2|parser)\b`)
)

// pyFunctions splits Python source into top-level functions by name.
func pyFunctions(src string) map[string]string {
	out := map[string]string{}
	locs := pyDef.FindAllStringSubmatchIndex(src, -1)
	for i, l := range locs {
		end := len(src)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		out[src[l[2]:l[3]]] = src[l[0]:end]
	}
	return out
}

// pyOptions reads the add_option calls in a function body, following
// calls of helper functions that add options (key_user_add_password_option,
// utils.optparse_add_*).
func pyOptions(t *testing.T, body string, funcs map[string]string) []sigulOption {
	var opts []sigulOption
	for _, m := range pyAddOption.FindAllStringSubmatchIndex(body, -1) {
		o := sigulOption{action: "store"}
		for _, s := range pyOptString.FindAllStringSubmatch(body[m[2]:m[3]], -1) {
			if strings.HasPrefix(s[1], "--") {
				o.long = s[1][2:]
			} else {
				o.short = s[1][1:]
			}
		}
		rest := body[m[1]:]
		if i := strings.Index(rest, "add_option("); i >= 0 {
			rest = rest[:i]
		}
		if a := pyAction.FindStringSubmatch(rest); a != nil {
			o.action = a[1]
		} else if i := strings.Index(rest, "action='"); i >= 0 && i < 80 {
			o.action = strings.SplitN(rest[i+8:], "'", 2)[0]
		}
		if o.long == "" {
			t.Fatalf("cannot read an option in:\n%s", body[m[0]:m[1]])
		}
		opts = append(opts, o)
	}
	for _, h := range pyHelper.FindAllStringSubmatch(body, -1) {
		if hb, ok := funcs[h[1]]; ok && strings.Contains(hb, "add_option(") {
			opts = append(opts, pyOptions(t, hb, funcs)...)
		}
	}
	return opts
}

// TestSigulOptionTable compares Sigul 1.2's client.py (read from
// ../shared/third-party, as published) with signet's command tree: every
// command and every option, short and long, with its kind of value.
func TestSigulOptionTable(t *testing.T) {
	src := sigulSrc(t)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	client, utils := read("client.py"), read("utils.py")
	funcs := pyFunctions(utils)
	for k, v := range pyFunctions(client) {
		funcs[k] = v
	}
	i := strings.Index(client, "command_handlers = {")
	if i < 0 {
		t.Fatal("client.py: no command_handlers table")
	}
	table := client[i : i+strings.Index(client[i:], "\n}")]
	handlers := pyHandler.FindAllStringSubmatch(table, -1)
	if len(handlers) < 30 {
		t.Fatalf("client.py: read only %d commands from command_handlers", len(handlers))
	}

	root := (&app{}).rootCommand()
	cmds := map[string]*cobra.Command{}
	for _, c := range root.Commands() {
		cmds[c.Name()] = c
	}
	checked := 0
	check := func(where string, fs *pflag.FlagSet, o sigulOption) {
		t.Helper()
		checked++
		f := fs.Lookup(o.long)
		if f == nil {
			t.Errorf("%s: Sigul's --%s is missing", where, o.long)
			return
		}
		if o.short != "" {
			sf := fs.ShorthandLookup(o.short)
			// The global -c is a hidden root-only spelling of
			// --config-file (see rootCommand).
			if sf == nil || sf != f && sf.Name != o.long+"-short" {
				t.Errorf("%s: Sigul's -%s is not --%s", where, o.short, o.long)
			}
		}
		want := map[string][]string{"store_true": {"bool"}, "count": {"count"}, "append": {"stringArray"}, "store": {"string"}}[o.action]
		if want == nil {
			t.Errorf("%s --%s: unknown optparse action %q", where, o.long, o.action)
		} else if !contains(want, f.Value.Type()) {
			t.Errorf("%s --%s: signet's flag is a %s, Sigul's action is %s", where, o.long, f.Value.Type(), o.action)
		}
	}

	var names []string
	for _, h := range handlers {
		name, fn := h[1], h[2]
		names = append(names, name)
		body, ok := funcs[fn]
		if !ok {
			t.Fatalf("client.py: no function %s for %s", fn, name)
		}
		c, ok := cmds[name]
		if !ok {
			t.Errorf("Sigul's command %s is missing", name)
			continue
		}
		for _, o := range pyOptions(t, body, funcs) {
			check(name, c.Flags(), o)
		}
	}

	// Global options: handle_global_options, with the helpers it calls,
	// and optparse's own --version.
	g, ok := funcs["handle_global_options"]
	if !ok {
		t.Fatal("client.py: no handle_global_options")
	}
	globals := pyOptions(t, g, funcs)
	if strings.Contains(g, "version=") {
		globals = append(globals, sigulOption{long: "version", action: "store_true"})
	}
	fs := pflag.NewFlagSet("root", pflag.ContinueOnError)
	fs.AddFlagSet(root.PersistentFlags())
	fs.AddFlagSet(root.Flags())
	for _, o := range globals {
		if o.long == "version" && fs.Lookup("version") == nil {
			// cobra adds --version when the command has a Version.
			if root.Version == "" {
				t.Errorf("global: Sigul's --version is missing")
			}
			continue
		}
		check("global", fs, o)
	}
	sort.Strings(names)
	t.Logf("compared %d commands and %d options with client.py: %s", len(names), checked, strings.Join(names, " "))
	if checked < 60 {
		t.Fatalf("only %d options read from client.py: the parser no longer understands it", checked)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
