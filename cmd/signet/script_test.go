package main

// The client's command and option table is tested by scripts in
// testdata/script, one per Sigul command (testscript): each runs the real
// signet command against an in-process server and relay
// (internal/servertest) and checks what it did, with independent tools
// (gpg, openssl, rpmkeys) where there is an output to check.
//
// Conventions the scripts can rely on:
//
//   - $ROOT, $ALICE and $BOB are client configurations of the server's
//     users root (an administrator, password in $ROOTPW), alice (key
//     administrator of the Ed25519 OpenPGP key "fedora", passphrase in
//     $ALICEPASS) and bob (no access). GNUPGHOME is $WORK/gnupg.
//   - $RPMS is go-rpmutils' directory of test packages.
//
// Commands added to testscript's set:
//
//	secrets FILE SECRET...
//	    writes the secrets to FILE, each followed by a NUL byte, as
//	    --batch reads them (then: stdin FILE).
//	genkey NAME TYPE [OPENPGP-USER-ID]
//	    generates a key of TYPE (hsm key type: ecdsa-p256, rsa2048, ...),
//	    with an OpenPGP certificate if a user ID is given (else for
//	    X.509), alice its key administrator with passphrase $ALICEPASS.
//	lastaudit
//	    prints the server's last audit record (operation, result,
//	    detail) to stdout.
//	expand SRC DST
//	    writes SRC to DST with $VARIABLES replaced by their values.
//	efiimages
//	    sets $EFI to the directory of Debian's unsigned EFI images
//	    (internal/artifacts): the script is skipped without them, except
//	    under CI=true, where it fails.
//
// Under -short, the scripts that run many processes and external tools
// (the signing commands, import-key, config import-sigul) skip
// themselves with [short]; the handlers behind them have in-process
// cases in server/signing_test.go.
//
// $SERVERDIR holds the servertest PKI (ca.pem, alice.pem, alice.key);
// $BRIDGEHOST, $BRIDGEPORT and $SERVERCN are what a client configuration
// names.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/internal/artifacts"
	"github.com/signet-project/signet/internal/servertest"
	"github.com/signet-project/signet/server"
)

type envKey struct{}
type tbKey struct{}

func TestScripts(t *testing.T) {
	t.Parallel() // TestCLI and the scripts each have servers of their own
	rpms := artifacts.RPMUtilsTestdata(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			tb, ok := env.T().(testing.TB)
			if !ok {
				return fmt.Errorf("testscript's T is a %T, not a testing.TB", env.T())
			}
			// Scripts run in parallel; softhsmtest.New makes their tokens
			// one at a time.
			e := servertest.New(tb)
			env.Values[envKey{}] = e
			env.Values[tbKey{}] = tb
			for user, name := range map[string]string{"root": "ROOT", "alice": "ALICE", "bob": "BOB"} {
				env.Setenv(name, e.ConfigFile(user))
			}
			ac := e.Config("alice")
			env.Setenv("SERVERDIR", e.Dir)
			env.Setenv("BRIDGEHOST", ac.BridgeHost)
			env.Setenv("BRIDGEPORT", fmt.Sprint(ac.BridgePort))
			env.Setenv("SERVERCN", ac.ServerHost)
			env.Setenv("ROOTPW", servertest.RootPW)
			env.Setenv("ALICEPASS", servertest.AlicePass)
			env.Setenv("RPMS", rpms)
			gnupg := filepath.Join(env.WorkDir, "gnupg")
			if err := os.Mkdir(gnupg, 0o700); err != nil {
				return err
			}
			env.Setenv("GNUPGHOME", gnupg)
			return nil
		},
		// [ci] is true under CI=true, where a missing tool is a failure
		// (scripts skip only with [!ci]).
		Condition: func(cond string) (bool, error) {
			if cond == "ci" {
				return os.Getenv("CI") == "true", nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"secrets":   cmdSecrets,
			"genkey":    cmdGenkey,
			"lastaudit": cmdLastAudit,
			"expand":    cmdExpand,
			"efiimages": cmdEFIImages,
		},
	})
}

func cmdSecrets(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: secrets FILE SECRET...")
	}
	var b strings.Builder
	for _, s := range args[1:] {
		b.WriteString(s)
		b.WriteByte(0)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o600))
}

func cmdGenkey(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: genkey NAME TYPE [OPENPGP-USER-ID]")
	}
	kt, err := hsm.ParseKeyType(args[1])
	ts.Check(err)
	e := ts.Value(envKey{}).(*servertest.Env)
	req := server.NewKeyRequest{Name: args[0], Type: kt, Owner: "alice", OwnerPassphrase: []byte(servertest.AlicePass)}
	if len(args) == 3 {
		req.UserIDs = []string{args[2]}
	}
	_, err = e.Admin.GenerateKey(context.Background(), req)
	ts.Check(err)
}

func cmdLastAudit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: lastaudit")
	}
	e := ts.Value(envKey{}).(*servertest.Env)
	r, err := e.Admin.Store.LastAudit(context.Background())
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "op=%s key=%s result=%s detail=%s\n", r.Operation, r.KeyName, r.Result, r.Detail)
}

func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: expand SRC DST")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(os.Expand(ts.ReadFile(args[0]), ts.Getenv)), 0o600))
}

func cmdEFIImages(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: efiimages")
	}
	ts.Setenv("EFI", artifacts.EFIImages(ts.Value(tbKey{}).(testing.TB)))
}
