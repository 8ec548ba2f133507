package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/cmd/internal/version"
	"github.com/signet-project/signet/internal/secret"
	"github.com/signet-project/signet/protocol"
)

// Exit statuses: 0 success, 1 failure, 2 bad usage (as optparse).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// app holds the global options and what the commands share.
type app struct {
	configFile     string
	userName       string
	batch          bool
	passphraseFile string
	verbose        int
	// protocolVersion is Sigul's hidden --internal-protocol-version, for
	// its test suite; signet speaks version 1 only.
	protocolVersion string

	stdin          *bufio.Reader
	stdout, stderr io.Writer
	openTTY        func() (*os.File, error)

	client *client.Client
	cfg    *client.Config
	ctx    context.Context
}

func defaultConfigFile() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return "client.toml"
	}
	return filepath.Join(home, ".signet", "client.toml")
}

// run is main without os.Exit, for tests.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: bufio.NewReader(stdin), stdout: stdout, stderr: stderr, ctx: ctx,
		openTTY: func() (*os.File, error) { return os.OpenFile("/dev/tty", os.O_RDWR, 0) }}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ce *client.Error
	switch {
	case errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") ||
		strings.HasPrefix(err.Error(), "unknown flag") || strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		fmt.Fprintf(stderr, "signet: %v\nRun 'signet --help' for usage.\n", err)
		return exitUsage
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "signet: Error: %v\n", ce)
	case errors.Is(err, client.ErrIntegrity):
		fmt.Fprintf(stderr, "signet: Error: the reply failed its integrity check; it was changed on its way or not sent by the server: %v\n", err)
	default:
		fmt.Fprintf(stderr, "signet: Error: %v\n", err)
	}
	return exitFail
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "signet [options] command [command-args...]",
		Short: "A signing server client (Sigul protocol v1)",
		Long: "signet is the client of the signet signing service. It keeps Sigul's client\n" +
			"commands and options, and speaks Sigul protocol v1 through a bridge to the server.",
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		SilenceErrors:         true,
		CompletionOptions:     cobra.CompletionOptions{},
		Args:                  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if help, _ := cmd.Flags().GetBool("help-commands"); help {
				for _, c := range cmd.Commands() {
					if c.IsAvailableCommand() && c.Name() != "completion" && c.Name() != "help" {
						fmt.Fprintf(a.stdout, "%-24s%s\n", c.Name(), c.Short)
					}
				}
				return nil
			}
			return usagef("missing command, see --help-commands")
		},
	}
	// Global options go before the command, as in Sigul (whose parser stops
	// at the command name): after it, -c is grant-key-access's and
	// change-passphrase's --client-binding-method. The long forms stay
	// valid anywhere.
	root.TraverseChildren = true
	pf := root.PersistentFlags()
	pf.StringVar(&a.configFile, "config-file", defaultConfigFile(), "Configuration file path (TOML; -c before the command)")
	root.Flags().StringVarP(&a.configFile, "config-file-short", "c", defaultConfigFile(), "Configuration file path")
	root.Flags().MarkHidden("config-file-short")
	root.Flags().StringVar(&a.protocolVersion, "internal-protocol-version", "", "")
	root.Flags().MarkHidden("internal-protocol-version")
	pf.StringVarP(&a.userName, "user-name", "u", "", "User name sent to the server (default: from the configuration, else the login name)")
	pf.BoolVar(&a.batch, "batch", false, "Communicate in batch-friendly mode (omit prompts, expect NUL-terminated input)")
	pf.StringVarP(&a.passphraseFile, "passphrase-file", "f", "", "File with the key passphrase")
	pf.CountVarP(&a.verbose, "verbose", "v", "More verbose output (twice for debugging messages)")
	root.Flags().Bool("help-commands", false, "List supported commands")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	for _, c := range a.commands() {
		root.AddCommand(c)
	}
	root.AddCommand(a.configCommand())
	version.Setup(root)
	return root
}

// connect loads the configuration and makes the client; commands call it
// after they have checked their arguments.
func (a *app) connect() error {
	if a.protocolVersion != "" && a.protocolVersion != "1" {
		return usagef("--internal-protocol-version %s: signet speaks Sigul protocol version 1 only", a.protocolVersion)
	}
	cfg, err := client.LoadConfig(a.configFile)
	if err != nil {
		if b, rerr := os.ReadFile(a.configFile); rerr == nil && client.LooksLikeSigulConfig(b) {
			return fmt.Errorf("%s is a Sigul client configuration (INI); signet reads its own (TOML) and must import it first:\n"+
				"    signet config import-sigul %s\nthen use the file it writes (~/.signet/client.toml, the default, or the one given with -o)",
				a.configFile, shellQuote(a.configFile))
		}
		if errors.Is(err, fs.ErrNotExist) && a.configFile == defaultConfigFile() {
			if _, serr := os.Stat(defaultSigulConfig()); serr == nil {
				return fmt.Errorf("reading the configuration: %w\n(there is a Sigul configuration, %s: import it with: signet config import-sigul)", err, defaultSigulConfig())
			}
		}
		return fmt.Errorf("reading the configuration: %w", err)
	}
	if a.userName != "" {
		cfg.UserName = a.userName
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	if a.verbose > 0 {
		level := slog.LevelInfo
		if a.verbose > 1 {
			level = slog.LevelDebug
		}
		c.Log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	}
	a.client, a.cfg = c, cfg
	return nil
}

// readSecret reads one secret: with --batch from standard input up to a NUL
// byte, otherwise from the terminal without echo.
func (a *app) readSecret(prompt string) ([]byte, error) {
	if a.batch {
		return secret.ReadNUL(a.stdin)
	}
	tty, err := a.openTTY()
	if err != nil {
		return nil, fmt.Errorf("cannot ask for a password without a terminal (use --batch): %w", err)
	}
	defer tty.Close()
	b, err := secret.PromptOn(tty, prompt)
	if err != nil {
		return nil, fmt.Errorf("reading a password: %w", err)
	}
	return b, nil
}

// readNewSecret asks twice (once with --batch) and requires both to match.
func (a *app) readNewSecret(prompt1, prompt2 string) ([]byte, error) {
	p, err := a.readSecret(prompt1)
	if err != nil || a.batch {
		return p, err
	}
	p2, err := a.readSecret(prompt2)
	defer clear(p2)
	if err != nil {
		clear(p)
		return nil, err
	}
	if string(p) != string(p2) {
		clear(p)
		//lint:ignore ST1005 Sigul's client says the same, capitalized
		return nil, errors.New("Input does not match")
	}
	return p, nil
}

func (a *app) adminPassword() ([]byte, error) { return a.readSecret("Administrator's password: ") }

// keyPassphrase is the user's key passphrase: from --passphrase-file if
// given (one trailing newline is dropped), else asked for.
func (a *app) keyPassphrase() ([]byte, error) {
	if a.passphraseFile != "" {
		return readPassphraseFile(a.passphraseFile)
	}
	return a.readSecret("Key passphrase: ")
}

// readPassphraseFile reads a passphrase from a file open to its owner
// alone; one trailing newline is dropped.
func readPassphraseFile(path string) ([]byte, error) {
	p, err := secret.ReadFile(path, "key passphrase")
	if err != nil {
		return nil, err
	}
	if m, bound := boundPassphrase(p); bound {
		clear(p)
		return nil, fmt.Errorf("the passphrase file holds a passphrase bound with method %q; signet's client supports %s binding methods: give a file with the passphrase itself", m, supportedNames(clientBindingMethods))
	}
	return p, nil
}

// keyAuth is Sigul's "--password" choice: an administrator's password
// instead of the key passphrase.
func (a *app) keyAuth(usePassword bool) (client.Auth, error) {
	if usePassword {
		p, err := a.readSecret("User password: ")
		return client.Auth{Password: p}, err
	}
	p, err := a.keyPassphrase()
	return client.Auth{Passphrase: p}, err
}

// openInput opens a regular file and returns it with its size.
func openInput(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("Error opening %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file", path)
	}
	return f, fi.Size(), nil
}

// writeOutput runs fn with a writer for the reply payload. With a path the
// file appears (atomically) only if fn succeeded. Without one the payload
// is held in an unlinked temporary file and copied to standard output only
// after it verified, so nothing unverified is ever printed.
func (a *app) writeOutput(path string, fn func(w io.Writer) error) error {
	return a.writeOutputMode(path, 0o644, fn)
}

// writeOutputMode is writeOutput with the file's mode (less the umask):
// 0o600 for plaintext no one else should read.
func (a *app) writeOutputMode(path string, perm os.FileMode, fn func(w io.Writer) error) error {
	if path != "" {
		if err := client.WriteFileAtomic(path, perm, fn); err != nil {
			return err
		}
		return nil
	}
	tmp, err := os.CreateTemp("", "signet-out-*")
	if err != nil {
		return err
	}
	os.Remove(tmp.Name())
	defer tmp.Close()
	if err := fn(tmp); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(a.stdout, tmp)
	return err
}

func (a *app) stdoutIsTTY() bool {
	f, ok := a.stdout.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func boolText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func yesNo(s, flag string) (bool, error) {
	switch s {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, usagef("--%s: invalid choice %q (choose from 'yes', 'no')", flag, s)
}

func checkDate(s string) error {
	if s == "" {
		return nil
	}
	if protocol.TypeDate.Check("expire-date", []byte(s)) != nil {
		return usagef("invalid --expire-date %q (want YYYY-MM-DD)", s)
	}
	return nil
}

// nargs is cobra.ExactArgs with Sigul's messages and a usage exit status.
func nargs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			if n == 0 {
				return usagef("unexpected arguments")
			}
			return usagef("%s expected", what)
		}
		return nil
	}
}

// aliasFlags makes each key of aliases another spelling of the flag it
// maps to: signet's own earlier spellings stay accepted beside Sigul's.
func aliasFlags(c *cobra.Command, aliases map[string]string) {
	c.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if to, ok := aliases[name]; ok {
			return pflag.NormalizedName(to)
		}
		return pflag.NormalizedName(name)
	})
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
