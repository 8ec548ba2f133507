package main

// The tests of this command are scripts in testdata/*.txt (testscript, as in
// FiloSottile/age's cmd/age): each runs signet-server as a user would, on a
// SoftHSM2 token of its own, and checks the results with independent tools
// (gpg, rpmkeys, openssl, pkcs11-tool).
//
// Conventions the scripts can rely on:
//
//   - $WORK is the script's directory and the working directory; the token
//     is selected with --module $MODULE --token-label $TOKEN, and
//     SOFTHSM2_CONF points at the script's own token directory.
//   - Every file in $WORK whose name ends in .secret holds a secret (one
//     line), mode 0600 when the script starts. pin.secret (the token's user PIN) and so-pin.secret (its
//     security-officer PIN) are written before the script starts; the
//     others come with the script or are written by it.
//   - GNUPGHOME is $WORK/gnupg, mode 0700.
//
// Commands added to testscript's set:
//
//	signet-server ARGS...
//	    runs the command (built once: this test binary, see TestMain) and
//	    fails the script if any secret appears in its arguments, its stdout,
//	    its stderr or what it showed on the terminal (see ttyin); if it
//	    exits with a status other than 0 or 1; if it fails without a
//	    one-line "signet-server: ..." message on stderr; or if it succeeds
//	    but writes to stderr.
//	nosecrets FILE|GLOB...
//	    fails if any of the files holds a secret (as is, or hex- or
//	    base64-encoded); each argument must name at least one file.
//	capture [-stderr] NAME... REGEXP
//	    sets the variables NAME... to the submatches of REGEXP in the last
//	    command's stdout (or stderr).
//	pkcs11 ARGS...
//	    runs pkcs11-tool on the script's token, logged in (the PIN is given
//	    to it in its environment, not on its command line).
//	csrverify FILE
//	    checks a PKCS#10 request's self-signature with `openssl req -verify`,
//	    which in OpenSSL 3.0 exits 0 even on a bad signature: success needs
//	    "verify OK" and no "failure" in its output as well as exit status 0.
//	corruptpem FILE
//	    flips one bit in the last byte of the first PEM block of FILE (in a
//	    certificate or request, a byte of its signature).
//	ceremonylog TRANSCRIPT DATABASE
//	    checks that the transcript is one JSON object per line, that the
//	    database's audit chain verifies, that both record the same steps
//	    (same time, actor, operation, key, key type, fingerprint, detail
//	    and result), and that neither file is open to group or others; then
//	    prints the steps, one a line, for cmp/cmpenv.
//	failaudit DATABASE
//	    makes every later append to DATABASE's audit table fail (a trigger
//	    that aborts the insert), as a full disk or a broken database would.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// binName is the name the command is installed under in the scripts' PATH;
// scripts run it through the signet-server script command, which checks
// every run for leaked secrets.
const binName = "signet-server-bin"

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){binName: main})
}

// tools are the independent checkers the scripts use. As with SoftHSM2, a
// missing one is a failure, not a skip: scripts/install-deps.sh installs
// them.
var tools = []string{"softhsm2-util", "pkcs11-tool", "gpg", "gpgconf", "rpmkeys", "rpm", "openssl"}

func TestScripts(t *testing.T) {
	testenv.SkipShort(t, "runs signet-server as a process per command")
	if _, err := softhsmtest.Module(); err != nil {
		t.Fatal(err)
	}
	testenv.MustHave(t, tools...)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup:               setupScript,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"signet-server": cmdSignetServer,
			"nosecrets":     cmdNoSecrets,
			"capture":       cmdCapture,
			"pkcs11":        cmdPKCS11,
			"csrverify":     cmdCSRVerify,
			"corruptpem":    cmdCorruptPEM,
			"ceremonylog":   cmdCeremonyLog,
			"sharesecrets":  cmdShareSecrets,
			"backupsecrets": cmdBackupSecrets,
			"flipbyte":      cmdFlipByte,
			"failaudit":     cmdFailAudit,
		},
	})
}

type tokenKey struct{}
type startKey struct{}

func setupScript(env *testscript.Env) error {
	tb, ok := env.T().(testing.TB)
	if !ok {
		return fmt.Errorf("testscript's T is a %T, not a testing.TB", env.T())
	}
	tk := softhsmtest.NewDir(tb)
	env.Values[tokenKey{}] = tk
	env.Values[startKey{}] = time.Now()
	env.Setenv("SOFTHSM2_CONF", tk.Conf)
	env.Setenv("MODULE", tk.Module)
	env.Setenv("TOKEN", tk.Label)
	for name, s := range map[string][]byte{"pin.secret": tk.PIN, "so-pin.secret": tk.SOPIN} {
		if err := os.WriteFile(filepath.Join(env.WorkDir, name), append(append([]byte(nil), s...), '\n'), 0o600); err != nil {
			return err
		}
	}
	// The script's own secrets were written with the default mode:
	// signet-server reads only secret files open to their owner alone.
	owned, _ := filepath.Glob(filepath.Join(env.WorkDir, "*.secret"))
	for _, p := range owned {
		if err := os.Chmod(p, 0o600); err != nil {
			return err
		}
	}
	gnupg := filepath.Join(env.WorkDir, "gnupg")
	if err := os.Mkdir(gnupg, 0o700); err != nil {
		return err
	}
	env.Setenv("GNUPGHOME", gnupg)
	env.Defer(func() {
		// gpg started an agent for this GNUPGHOME if the script used a
		// secret key; stop it before the directory goes.
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+gnupg)
		cmd.Run()
	})
	return nil
}

// secrets returns every secret of the script: the contents of the *.secret
// files in $WORK, without the trailing newline.
func secrets(ts *testscript.TestScript) map[string][]byte {
	names, err := filepath.Glob(filepath.Join(ts.Getenv("WORK"), "*.secret"))
	ts.Check(err)
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		ts.Check(err)
		b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		if len(b) < 8 {
			ts.Fatalf("%s: a test secret must be at least 8 bytes, so that it cannot match by chance", filepath.Base(n))
		}
		out[filepath.Base(n)] = b
	}
	if len(out) == 0 {
		ts.Fatalf("no *.secret files in $WORK")
	}
	return out
}

// leak reports which secret, if any, data holds, as is or encoded.
func leak(secrets map[string][]byte, data []byte) (string, bool) {
	for name, s := range secrets {
		for _, v := range []struct {
			enc string
			b   []byte
		}{
			{"", s},
			{" (hex)", []byte(hex.EncodeToString(s))},
			{" (HEX)", []byte(strings.ToUpper(hex.EncodeToString(s)))},
			{" (base64)", []byte(base64.RawStdEncoding.EncodeToString(s))},
			{" (base64url)", []byte(base64.RawURLEncoding.EncodeToString(s))},
			{" (JSON-escaped)", jsonString(s)},
			{" (Go-quoted)", []byte(strings.Trim(fmt.Sprintf("%q", s), `"`))},
		} {
			if bytes.Contains(data, v.b) {
				return name + v.enc, true
			}
		}
	}
	return "", false
}

func jsonString(s []byte) []byte {
	b, _ := json.Marshal(string(s))
	return bytes.Trim(b, `"`)
}

func cmdSignetServer(ts *testscript.TestScript, neg bool, args []string) {
	sec := secrets(ts)
	for _, a := range args {
		if name, ok := leak(sec, []byte(a)); ok {
			ts.Fatalf("the command line holds the secret %s: secrets must come from files", name)
		}
	}
	err := ts.Exec(binName, args...)
	if tty := ts.ReadFile("ttyout"); tty != "" {
		ts.Logf("[terminal]\n%s", tty)
	}
	stdout, stderr := ts.ReadFile("stdout"), ts.ReadFile("stderr")
	// testscript types all of ttyin ahead, before the command starts, and
	// the terminal echoes it then; from the first prompt on, the command
	// has the terminal and nothing typed may show.
	tty := ts.ReadFile("ttyout")
	if i := strings.Index(tty, "Enter the "); i >= 0 {
		tty = tty[i:]
	}
	for what, out := range map[string]string{"stdout": stdout, "stderr": stderr, "terminal": tty} {
		if name, ok := leak(sec, []byte(out)); ok {
			ts.Fatalf("signet-server wrote the secret %s to its %s", name, what)
		}
	}
	if err != nil {
		ts.Logf("[%v]", err)
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("running signet-server: %v", err)
		}
		if ee.ExitCode() != 1 {
			ts.Fatalf("signet-server failed with exit status %d (a panic or a signal?), want 1", ee.ExitCode())
		}
		if !strings.HasPrefix(stderr, "signet-server: ") || !strings.HasSuffix(stderr, "\n") || strings.Count(stderr, "\n") != 1 {
			ts.Fatalf("signet-server failed without a one-line 'signet-server: ...' message on stderr")
		}
		if !neg {
			ts.Fatalf("unexpected command failure")
		}
		return
	}
	if neg {
		ts.Fatalf("unexpected command success")
	}
	if stderr != "" {
		ts.Fatalf("signet-server succeeded but wrote to stderr")
	}
}

func cmdNoSecrets(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! nosecrets")
	}
	if len(args) == 0 {
		ts.Fatalf("usage: nosecrets FILE|GLOB...")
	}
	sec := secrets(ts)
	for _, pattern := range args {
		files, err := filepath.Glob(ts.MkAbs(pattern))
		ts.Check(err)
		if len(files) == 0 {
			ts.Fatalf("nosecrets: no file matches %s", pattern)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			ts.Check(err)
			if name, ok := leak(sec, data); ok {
				ts.Fatalf("%s holds the secret %s", f, name)
			}
			ts.Logf("%s (%d bytes): no secret", filepath.Base(f), len(data))
		}
	}
}

func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	from := "stdout"
	if len(args) > 0 && args[0] == "-stderr" {
		from, args = "stderr", args[1:]
	}
	if neg || len(args) < 2 {
		ts.Fatalf("usage: capture [-stderr] NAME... REGEXP")
	}
	names, pattern := args[:len(args)-1], args[len(args)-1]
	re, err := regexp.Compile("(?m)" + pattern)
	ts.Check(err)
	if re.NumSubexp() != len(names) {
		ts.Fatalf("capture: %d names for %d submatches", len(names), re.NumSubexp())
	}
	m := re.FindStringSubmatch(ts.ReadFile(from))
	if m == nil {
		ts.Fatalf("capture: no match for %q in %s", pattern, from)
	}
	for i, name := range names {
		ts.Setenv(name, m[i+1])
		ts.Logf("%s=%s", name, m[i+1])
	}
}

func cmdPKCS11(ts *testscript.TestScript, neg bool, args []string) {
	tk := ts.Value(tokenKey{}).(*softhsmtest.Token)
	cmd := exec.Command("pkcs11-tool", append([]string{"--module", tk.Module, "--token-label", tk.Label,
		"--login", "--pin", "env:SIGNET_TEST_PKCS11_PIN"}, args...)...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+tk.Conf, "SIGNET_TEST_PKCS11_PIN="+string(tk.PIN))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	ts.Stdout().Write(stdout.Bytes())
	ts.Stderr().Write(stderr.Bytes())
	if err != nil && !neg {
		ts.Fatalf("pkcs11-tool: %v", err)
	}
	if err == nil && neg {
		ts.Fatalf("pkcs11-tool succeeded unexpectedly")
	}
}

func cmdCSRVerify(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: csrverify FILE")
	}
	cmd := exec.Command("openssl", "req", "-verify", "-noout", "-in", ts.MkAbs(args[0]))
	out, err := cmd.CombinedOutput()
	ts.Logf("%s", out)
	ok := err == nil && bytes.Contains(out, []byte("verify OK")) && !bytes.Contains(bytes.ToLower(out), []byte("failure"))
	if ok && neg {
		ts.Fatalf("openssl req -verify accepted %s", args[0])
	}
	if !ok && !neg {
		ts.Fatalf("openssl req -verify did not accept %s (%v)", args[0], err)
	}
}

func cmdCorruptPEM(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: corruptpem FILE")
	}
	path := ts.MkAbs(args[0])
	data, err := os.ReadFile(path)
	ts.Check(err)
	block, _ := pem.Decode(data)
	if block == nil {
		ts.Fatalf("%s: no PEM block", args[0])
	}
	block.Bytes[len(block.Bytes)-1] ^= 1
	ts.Check(os.WriteFile(path, pem.EncodeToMemory(block), 0o644))
}

func cmdCeremonyLog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: ceremonylog TRANSCRIPT DATABASE")
	}
	logPath, dbPath := ts.MkAbs(args[0]), ts.MkAbs(args[1])
	for _, p := range []string{logPath, dbPath} {
		fi, err := os.Stat(p)
		ts.Check(err)
		if fi.Mode().Perm()&0o077 != 0 {
			ts.Fatalf("%s has mode %v: others can read it", filepath.Base(p), fi.Mode().Perm())
		}
	}

	// The transcript: one JSON object a line, every line complete.
	data, err := os.ReadFile(logPath)
	ts.Check(err)
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		ts.Fatalf("%s: the last line is not complete", args[0])
	}
	var steps []server.TranscriptEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var e server.TranscriptEntry
		if err := dec.Decode(&e); err != nil {
			ts.Fatalf("%s:%d: %v", args[0], n, err)
		}
		if dec.More() {
			ts.Fatalf("%s:%d: more than one JSON value on the line", args[0], n)
		}
		if e.Time.IsZero() || e.Actor == "" || e.Operation == "" || e.Result == "" {
			ts.Fatalf("%s:%d: time, actor, operation or result missing: %s", args[0], n, sc.Bytes())
		}
		steps = append(steps, e)
	}
	ts.Check(sc.Err())

	// The audit table: a verified chain of the same steps.
	ctx := context.Background()
	st, err := store.Open(ctx, dbPath)
	ts.Check(err)
	defer st.Close()
	n, err := st.VerifyAudit(ctx)
	ts.Check(err)
	recs, err := st.ListAudit(ctx, 0, 0)
	ts.Check(err)
	if n != len(recs) {
		ts.Fatalf("VerifyAudit verified %d records of %d", n, len(recs))
	}
	if len(recs) != len(steps) {
		ts.Fatalf("the audit table has %d records, the transcript %d lines", len(recs), len(steps))
	}
	start := ts.Value(startKey{}).(time.Time)
	for i, r := range recs {
		e := steps[i]
		var d struct {
			KeyType     string `json:"key_type"`
			Fingerprint string `json:"fingerprint"`
			Detail      string `json:"detail"`
		}
		if err := json.Unmarshal([]byte(r.Detail), &d); err != nil {
			ts.Fatalf("audit record %d: detail %q: %v", r.ID, r.Detail, err)
		}
		if !r.At.Equal(e.Time) || r.Actor != e.Actor || r.Operation != e.Operation || r.KeyName != e.Key ||
			r.Result != e.Result || d.KeyType != e.KeyType || d.Fingerprint != e.Fingerprint || d.Detail != e.Detail {
			ts.Fatalf("audit record %d differs from transcript line %d:\n%+v\n%+v", r.ID, i+1, r, e)
		}
		if e.Time.Before(start.Add(-time.Second)) || e.Time.After(time.Now()) {
			ts.Fatalf("transcript line %d: time %v is not during the test", i+1, e.Time)
		}
		if i > 0 && e.Time.Before(steps[i-1].Time) {
			ts.Fatalf("transcript line %d: time goes backwards", i+1)
		}
		var b strings.Builder
		b.WriteString(e.Operation)
		for _, f := range [][2]string{{"key", e.Key}, {"type", e.KeyType}, {"fpr", e.Fingerprint}} {
			if f[1] != "" {
				fmt.Fprintf(&b, " %s=%s", f[0], f[1])
			}
		}
		if e.Detail != "" {
			fmt.Fprintf(&b, " detail=\"%s\"", e.Detail)
		}
		fmt.Fprintf(&b, " -> %s\n", e.Result)
		ts.Stdout().Write([]byte(b.String()))
	}
}

func cmdFailAudit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: failaudit DATABASE")
	}
	db, err := sql.Open("sqlite", "file:"+ts.MkAbs(args[0])+"?_pragma=busy_timeout(10000)")
	ts.Check(err)
	defer db.Close()
	_, err = db.Exec(`CREATE TRIGGER audit_refused BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END`)
	ts.Check(err)
}
