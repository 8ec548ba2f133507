package client_test

import (
	"os"
	"testing"

	softhsmtest "github.com/signet-project/signet/softhsm-test"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Main(m)) }
