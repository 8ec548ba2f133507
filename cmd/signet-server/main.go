// Command signet-server is signet's server role. This version carries the
// local, offline key-ceremony commands an operator runs on the server host:
// `token ...`, `key ...`, `user ...`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/signet-project/signet/cmd/internal/health"
	"github.com/signet-project/signet/cmd/internal/version"
	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/internal/fileperm"
	"github.com/signet-project/signet/internal/secret"
	"github.com/signet-project/signet/server"
	"github.com/signet-project/signet/server/store"
)

const defaultConfig = "/etc/signet/server.toml"

func main() {
	// It holds PINs or passphrases: no core dumps, no ptrace.
	if err := secret.Harden(); err != nil {
		fmt.Fprintln(os.Stderr, "signet-server:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "signet-server:", err)
		os.Exit(health.ExitCode(err))
	}
}

// app is what every command shares: configuration and the secret sources.
type app struct {
	v     *viper.Viper
	cfg   *config // decoded from v by loadConfig
	batch bool
	// secret sources, by flag prefix
	pinFile, soPinFile, passFile, pwFile, keyPassFile string
	pinFD, soPinFD, passFD, pwFD, keyPassFD           int
}

func newRoot() *cobra.Command {
	a := &app{v: viper.New()}
	root := &cobra.Command{
		Use:   "signet-server",
		Short: "signet's signing server and its key-ceremony commands",
		Long: `signet-server is the only signet process that touches keys.

The commands below are local and offline: an operator runs them on the server
host to set up the PKCS#11 token, generate or import keys, grant users access,
and export public keys and certificates. Every step that changes something is
appended to the audit table and to a transcript file the operator keeps.

Secrets (token PIN, passphrases, passwords) are read from a file, an inherited
file descriptor, or a prompt without echo; never from the command line.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.loadConfig(cmd)
		},
	}
	f := root.PersistentFlags()
	f.String("config", "", "configuration file (TOML; default "+defaultConfig+" if it exists)")
	f.String("database", "", "SQLite database file, or postgres:// URL without a password (config: database)")
	f.String("module", "", "PKCS#11 module path (config: token.module)")
	f.String("token-label", "", "token label (config: token.label)")
	f.String("token-serial", "", "token serial number; wins over the label (config: token.serial)")
	f.Int("max-sessions", 0, "cap on sessions with the token (config: token.max_sessions; default 16)")
	f.String("transcript", "", "ceremony transcript file, appended to (config: transcript; default signet-ceremony.log)")
	f.BoolVar(&a.batch, "batch", false, "never prompt: secrets must come from files or descriptors, confirmations from --yes")
	f.StringVar(&a.pinFile, "pin-file", "", "read the token PIN from this file ('-' for stdin)")
	f.IntVar(&a.pinFD, "pin-fd", 0, "read the token PIN from this file descriptor")
	for _, name := range []string{"database", "transcript"} {
		a.v.BindPFlag(name, f.Lookup(name))
	}
	a.v.BindPFlag("token.module", f.Lookup("module"))
	a.v.BindPFlag("token.label", f.Lookup("token-label"))
	a.v.BindPFlag("token.serial", f.Lookup("token-serial"))
	a.v.BindPFlag("token.max_sessions", f.Lookup("max-sessions"))
	a.v.SetDefault("database", "signet.db")
	a.v.SetDefault("transcript", "signet-ceremony.log")
	a.v.SetDefault("token.module", "/usr/lib/softhsm/libsofthsm2.so")
	a.v.SetDefault("kdf.time", hsm.DefaultKDF().Time)
	a.v.SetDefault("kdf.memory_kib", hsm.DefaultKDF().MemoryKiB)
	a.v.SetDefault("kdf.threads", hsm.DefaultKDF().Threads)

	root.AddCommand(a.tokenCmd(), a.keyCmd(), a.userCmd(), a.auditCmd(), a.dbCmd(), a.runCmd(), a.statusCmd())
	a.addBackupCommands(root)
	version.Setup(root)
	return root
}

func (a *app) loadConfig(cmd *cobra.Command) error {
	stdin := 0
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Value.String() == "-" && f.Value.Type() == "string" && f.Name != "output" {
			stdin++
		}
	})
	if stdin > 1 {
		return errors.New("only one input can come from stdin ('-')")
	}
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		if _, err := os.Stat(defaultConfig); err == nil {
			path = defaultConfig
		}
	}
	return a.decodeConfig(path)
}

// secretFlags adds --NAME-file and --NAME-fd options for one secret.
func secretFlags(cmd *cobra.Command, name, what string, file *string, fd *int) {
	cmd.Flags().StringVar(file, name+"-file", "", "read the "+what+" from this file ('-' for stdin)")
	cmd.Flags().IntVar(fd, name+"-fd", 0, "read the "+what+" from this file descriptor")
}

func (a *app) read(what, file string, fd int, confirm bool) ([]byte, error) {
	return secret.Source{What: what, File: file, FD: fd, Batch: a.batch, Confirm: confirm}.Read()
}

func (a *app) tokenConfig() hsm.Config {
	return hsm.Config{
		Module:      a.cfg.Token.Module,
		TokenLabel:  a.cfg.Token.Label,
		TokenSerial: a.cfg.Token.Serial,
		MaxSessions: a.cfg.Token.MaxSessions,
	}
}

func (a *app) kdf() hsm.KDFParams {
	return hsm.KDFParams{Time: a.cfg.KDF.Time, MemoryKiB: a.cfg.KDF.MemoryKiB, Threads: a.cfg.KDF.Threads}
}

func (a *app) tokenName() string {
	if s := a.cfg.Token.Serial; s != "" {
		return s
	}
	return a.cfg.Token.Label
}

// openStore opens the database; a missing one is created only by commands
// that add things (create true), so a typo in --database is not silently
// a new empty database.
//
// A postgres:// URL selects PostgreSQL; its password, if the server wants
// one, comes from database_password_file or database_password_credential
// (or libpq's passfile), never from the URL.
func (a *app) openStore(ctx context.Context, create bool) (*store.Store, error) {
	path := a.cfg.Database
	opts := store.Options{ServerName: a.cfg.Server.Name}
	if store.IsPostgres(path) {
		pw, err := a.databasePassword()
		if err != nil {
			return nil, err
		}
		defer clear(pw)
		opts.Password = pw
		return store.OpenWith(ctx, path, opts)
	}
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("database %s: %w (it is created by `user add`, `key generate` or `key import`)", path, err)
		}
	}
	return store.OpenWith(ctx, path, opts)
}

// databasePassword reads the PostgreSQL password from the configured file
// or systemd credential; nil when neither is configured.
func (a *app) databasePassword() ([]byte, error) {
	file := a.cfg.DatabasePasswordFile
	if name := a.cfg.DatabasePasswordCredential; name != "" {
		if file != "" {
			return nil, errors.New("configuration: set database_password_file or database_password_credential, not both")
		}
		var err error
		if file, err = credentialPath("database_password_credential", name); err != nil {
			return nil, err
		}
	}
	if file == "" {
		return nil, nil
	}
	return secret.ReadFile(file, "database password")
}

// session is an opened database and, when needed, a logged-in token.
type session struct {
	admin *server.Admin
	tok   *hsm.Token
}

func (s *session) close() {
	clear(s.admin.PIN)
	if s.tok != nil {
		s.tok.Close()
	}
	s.admin.Store.Close()
	if c, ok := s.admin.Transcript.(*lazyFile); ok {
		c.Close()
	}
}

// open prepares an Admin; with token, it reads the PIN and logs in first,
// so that a wrong PIN or a missing secret never creates a database.
func (a *app) open(ctx context.Context, token, create bool) (*session, error) {
	var tok *hsm.Token
	var pin []byte
	if token {
		var err error
		if tok, err = hsm.Open(a.tokenConfig()); err != nil {
			return nil, err
		}
		if pin, err = a.read("token PIN", a.pinFile, a.pinFD, false); err == nil {
			err = tok.Login(pin)
		}
		if err != nil {
			clear(pin)
			tok.Close()
			return nil, err
		}
	}
	st, err := a.openStore(ctx, create)
	if err != nil {
		clear(pin)
		if tok != nil {
			tok.Close()
		}
		return nil, err
	}
	kdf := a.kdf()
	return &session{tok: tok, admin: &server.Admin{
		Store: st, Token: tok, PIN: pin, TokenName: a.tokenName(), KDF: kdf, Actor: actor(),
		Transcript: &lazyFile{path: a.cfg.Transcript},
	}}, nil
}

// group makes a command that only holds subcommands fail on an unknown
// or missing subcommand, instead of printing help and exiting 0.
func group(c *cobra.Command) *cobra.Command {
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return fmt.Errorf("%s needs a subcommand; see '%s --help'", cmd.CommandPath(), cmd.CommandPath())
	}
	return c
}

func actor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// lazyFile opens the transcript for appending on the first write, so that
// read-only commands leave no file behind.
type lazyFile struct {
	path string
	f    *os.File
}

func (l *lazyFile) Write(p []byte) (int, error) {
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	n, err := l.f.Write(p)
	if err == nil {
		err = l.f.Sync()
	}
	return n, err
}

func (l *lazyFile) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// output is a file written atomically: a temporary file in the target's
// directory, created before any work so that an unwritable destination is
// refused before anything is signed or recorded, then synced and renamed
// over the target by commit. Without a path it is stdout.
type output struct {
	path string
	tmp  *os.File
	done bool
}

func createOutput(path string) (*output, error) {
	if path == "" || path == "-" {
		return &output{}, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("output %s is a directory", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, errors.Unwrap(err))
	}
	return &output{path: path, tmp: tmp}, nil
}

func (o *output) commit(data []byte) error {
	if o.tmp == nil {
		_, err := os.Stdout.Write(data)
		return err
	}
	_, err := o.tmp.Write(data)
	if err == nil {
		err = o.tmp.Sync()
	}
	if cerr := o.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(o.tmp.Name(), 0o644&^fileperm.Umask())
	}
	if err == nil {
		err = os.Rename(o.tmp.Name(), o.path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	o.done = true
	return nil
}

// abort removes the temporary file unless commit renamed it.
func (o *output) abort() {
	if o.tmp != nil && !o.done {
		o.tmp.Close()
		os.Remove(o.tmp.Name())
	}
}

// with opens a session (with the token when token is set), runs fn and
// closes the session.
func (a *app) with(cmd *cobra.Command, token, create bool, fn func(s *session) error) error {
	s, err := a.open(cmd.Context(), token, create)
	if err != nil {
		return err
	}
	defer s.close()
	return fn(s)
}
