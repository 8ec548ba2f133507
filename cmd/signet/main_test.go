package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

// softhsmM runs the tests with this process's SoftHSM2 set up.
type softhsmM struct{ m *testing.M }

func (s softhsmM) Run() int { return softhsmtest.Main(s.m) }

// TestMain also makes this test binary the "signet" command of the
// testscript files (testdata/script/*.txt): run as "signet" it is the
// client, exit status and all.
func TestMain(m *testing.M) {
	testscript.Main(softhsmM{m}, map[string]func(){
		"signet": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}
