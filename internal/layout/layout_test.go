package layout

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/signet-project/signet/"

// rule: no package matching from (a path, or a prefix ending in "/") may
// depend, directly or not, on a package matching any of banned.
type rule struct {
	from   string
	banned []string
	why    string
}

var testOnly = []string{"softhsm-test", "rabbitmq-test", "postgres-test", "secureboot-test", "yubihsm-sim", "multiserver-test", "internal/artifacts", "internal/servertest", "internal/testenv", "internal/testpki", "internal/stacktest", "internal/kojitest", "internal/layout"}

var rules = []rule{
	{"protocol", []string{"*"}, "protocol imports no other signet package"},
	{"hsm", []string{"*"}, "hsm imports no other signet package"},
	{"server/store", []string{"*"}, "server/store imports no other signet package"},
	{"formats/", []string{"protocol", "hsm", "server", "server/", "client", "bridge", "robo", "internal/koji"}, "the formats sign with any crypto.Signer"},
	{"bridge", []string{"hsm", "server", "server/", "formats/", "client", "robo"}, "the bridge cannot sign"},
	{"client", []string{"hsm", "server", "server/", "bridge", "robo"}, "the client library needs no key"},
	{"robo", []string{"hsm", "server", "server/", "bridge"}, "signet-robo signs through the client library"},
	{"server", []string{"bridge", "client", "robo", "internal/koji"}, "the server does not depend on the other roles, nor talk to Koji"},
	{"*", testOnly, "no program depends on a test package"},
}

// match reports whether the module-relative path p matches pattern: "*"
// matches any package, "x/" any package under x, anything else itself.
func match(pattern, p string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "/"):
		return strings.HasPrefix(p, pattern)
	}
	return p == pattern
}

// goTool is the go command; go test puts its own first on PATH.
func goTool() string { return "go" }

// deps lists every package of the module with its signet dependencies
// (transitive, tests excluded), module-relative.
func deps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command(goTool(), "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], module) {
			continue
		}
		pkg := strings.TrimPrefix(f[0], module)
		m[pkg] = []string{}
		for _, d := range f[1:] {
			if strings.HasPrefix(d, module) {
				m[pkg] = append(m[pkg], strings.TrimPrefix(d, module))
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func isTestOnly(p string) bool {
	for _, t := range testOnly {
		if p == t {
			return true
		}
	}
	return false
}

func TestImportRules(t *testing.T) {
	all := deps(t)
	for _, must := range []string{"protocol", "hsm", "bridge", "client", "server", "server/store", "formats/rpm", "robo", "cmd/signet-server"} {
		if _, ok := all[must]; !ok {
			t.Fatalf("go list did not report package %s: the rules below would check nothing", must)
		}
	}
	checked := 0
	for pkg, ds := range all {
		if isTestOnly(pkg) {
			continue
		}
		for _, r := range rules {
			if !match(r.from, pkg) {
				continue
			}
			for _, d := range ds {
				for _, b := range r.banned {
					if match(b, d) {
						t.Errorf("%s depends on %s: %s (docs/ARCHITECTURE.md, Who may import whom)", pkg, d, r.why)
					}
				}
			}
			checked++
		}
	}
	if checked < len(rules) {
		t.Fatalf("only %d rule applications for %d rules", checked, len(rules))
	}
}

// TestRulesCatchViolations makes sure a violation would be reported: the
// matcher must see server's dependency on hsm, which the bridge may not have.
func TestRulesCatchViolations(t *testing.T) {
	all := deps(t)
	var bridgeRule rule
	for _, r := range rules {
		if r.from == "bridge" {
			bridgeRule = r
		}
	}
	found := false
	for _, d := range all["server"] {
		for _, b := range bridgeRule.banned {
			if match(b, d) {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("the bridge's rule would not catch server's own dependencies (hsm, formats): the matcher is broken")
	}
}
