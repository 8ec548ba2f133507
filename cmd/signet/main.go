// Command signet is signet's client: Sigul's client commands and options,
// speaking Sigul protocol v1 to a bridge and, through it, to the server.
//
//	signet [global options] COMMAND [options] ARGS...
//
// Secrets (passwords, passphrases) are read from the terminal without echo,
// or with --batch from standard input, each terminated by a NUL byte, in the
// order the command asks for them; never from the command line.
package main

import (
	"fmt"
	"os"

	"github.com/signet-project/signet/internal/secret"
)

func main() {
	// It holds passphrases and passwords: no core dumps, no ptrace.
	if err := secret.Harden(); err != nil {
		fmt.Fprintln(os.Stderr, "signet:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
