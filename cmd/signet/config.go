package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/client"
)

// defaultSigulConfig is Sigul's client configuration file.
func defaultSigulConfig() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return "client.conf"
	}
	return filepath.Join(home, ".sigul", "client.conf")
}

func (a *app) configCommand() *cobra.Command {
	cfg := &cobra.Command{Use: "config", Short: "Manage signet's client configuration (signet)", Args: nargs(0, "")}
	var out string
	imp := &cobra.Command{Use: "import-sigul [options] [FILE]", Short: "Make a signet configuration from a Sigul client configuration",
		Long: `Read a Sigul client configuration (INI; default ~/.sigul/client.conf) and
write the same settings as a signet configuration (TOML; default
~/.signet/client.toml, the client's default; an existing file is never
overwritten), with PEM files beside it: the CA certificates the NSS
database trusts for TLS (NAME-ca.pem), the client certificate
(NAME-cert.pem) and its private key (NAME-key.pem, mode 0600), exported
from the NSS database with certutil and pk12util (libnss3-tools) and
converted with openssl.

The NSS database password is [nss] nss-password if the file sets it,
otherwise asked for (with --batch, read from standard input up to a NUL
byte); it reaches pk12util only in a private temporary file.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("at most one configuration file expected")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			src := defaultSigulConfig()
			if len(args) == 1 {
				src = args[0]
			}
			if out == "" {
				out = defaultConfigFile()
			}
			return a.importSigul(src, out)
		}}
	imp.Flags().StringVarP(&out, "output", "o", "", "Write the signet configuration to this file (default ~/.signet/client.toml)")
	cfg.AddCommand(imp)
	return cfg
}

// importSigul converts the Sigul configuration src into a signet one at out.
func (a *app) importSigul(src, out string) (err error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading the Sigul configuration: %w", err)
	}
	sc, err := client.ParseSigulConfig(b)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if fi, err := os.Stat(sc.NSSDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("[nss] nss-dir %s is not a directory", sc.NSSDir)
	}
	for _, tool := range []string{"certutil", "pk12util", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed to read the NSS database (Debian: apt-get install libnss3-tools openssl; Fedora: dnf install nss-tools openssl): %w", tool, err)
		}
	}
	dir := filepath.Dir(out)
	stem := strings.TrimSuffix(filepath.Base(out), filepath.Ext(out))
	caPath := filepath.Join(dir, stem+"-ca.pem")
	certPath := filepath.Join(dir, stem+"-cert.pem")
	keyPath := filepath.Join(dir, stem+"-key.pem")
	for _, p := range []string{out, caPath, certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite it (give another path with -o)", p)
		}
	}

	var nssPW []byte
	if sc.HasNSSPassword {
		nssPW = []byte(sc.NSSPassword)
	} else if nssPW, err = a.readSecret("NSS database password: "); err != nil {
		return err
	}
	defer clear(nssPW)

	tmp, err := os.MkdirTemp("", "signet-import-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	dbPWFile := filepath.Join(tmp, "nss-password")
	if err := os.WriteFile(dbPWFile, append(append([]byte(nil), nssPW...), '\n'), 0o600); err != nil {
		return err
	}
	var rnd [24]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	p12PWFile := filepath.Join(tmp, "p12-password")
	if err := os.WriteFile(p12PWFile, []byte(hex.EncodeToString(rnd[:])), 0o600); err != nil {
		return err
	}

	cas, err := nssTrustedCAs(sc.NSSDir)
	if err != nil {
		return err
	}
	p12 := filepath.Join(tmp, "client.p12")
	if _, err := runTool("pk12util", "-o", p12, "-n", sc.CertNickname, "-d", sc.NSSDir, "-k", dbPWFile, "-w", p12PWFile); err != nil {
		return fmt.Errorf("exporting certificate %q with its key from %s: %w", sc.CertNickname, sc.NSSDir, err)
	}
	pemOut, err := runTool("openssl", "pkcs12", "-in", p12, "-passin", "file:"+p12PWFile, "-nodes")
	if err != nil {
		return fmt.Errorf("reading the exported PKCS#12 file: %w", err)
	}
	defer clear(pemOut)
	certPEM, keyPEM, err := splitClientPEM(pemOut)
	if err != nil {
		return fmt.Errorf("certificate %q in %s: %w", sc.CertNickname, sc.NSSDir, err)
	}
	defer clear(keyPEM)

	var toml bytes.Buffer
	fmt.Fprintf(&toml, "# signet client configuration, imported from %s\n# by signet config import-sigul.\n[client]\n", src)
	fmt.Fprintf(&toml, "bridge-hostname = %s\nbridge-port = %d\nserver-hostname = %s\n",
		strconv.Quote(sc.BridgeHost), sc.BridgePort, strconv.Quote(sc.ServerHost))
	if sc.UserName != "" {
		fmt.Fprintf(&toml, "user-name = %s\n", strconv.Quote(sc.UserName))
	}
	fmt.Fprintf(&toml, "ca-file = %s\nclient-cert-file = %s\nclient-key-file = %s\n",
		strconv.Quote(filepath.Base(caPath)), strconv.Quote(filepath.Base(certPath)), strconv.Quote(filepath.Base(keyPath)))
	if err := writeKojiTOML(&toml, sc.Koji); err != nil {
		return err
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()
	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{{keyPath, keyPEM, 0o600}, {certPath, certPEM, 0o644}, {caPath, cas, 0o644}, {out, toml.Bytes(), 0o644}} {
		if err := createNew(f.path, f.data, f.perm); err != nil {
			return err
		}
		written = append(written, f.path)
	}
	// What was written must be usable as it is.
	cfg, err := client.LoadConfig(out)
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		_, err = tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	}
	if err != nil {
		return fmt.Errorf("the imported configuration does not load: %w", err)
	}
	fmt.Fprintf(a.stdout, "Wrote %s\n  with %s (CA certificates), %s (client certificate) and %s (private key, mode 0600).\n",
		out, caPath, certPath, keyPath)
	fmt.Fprintf(a.stdout, "Use it with: signet -c %s COMMAND ...\n", out)
	if sc.MinTLS != "tls1.2" || sc.MaxTLS != "tls1.2" {
		fmt.Fprintf(a.stdout, "Note: nss-min-tls/nss-max-tls (%s/%s) are not carried over: signet's client uses TLS 1.2 or 1.3.\n", sc.MinTLS, sc.MaxTLS)
	}
	for _, name := range append([]string{""}, cfg.Koji.InstanceNames()...) {
		if name == "" && cfg.Koji.KojiConfig == "" {
			continue
		}
		what := "Koji instance " + name
		if name == "" {
			what = "the default Koji configuration"
		}
		if _, err := cfg.Koji.Resolve(name); err != nil {
			fmt.Fprintf(a.stdout, "Note: %s was carried over but cannot be used as it is: %v\n", what, err)
		}
	}
	if strings.TrimSpace(sc.BindingsEnabled) != "" {
		fmt.Fprintf(a.stdout, "Note: [binding] methods (%s) are not carried over: signet supports no passphrase binding.\n", sc.BindingsEnabled)
	}
	return nil
}

// writeKojiTOML writes Sigul's [koji] section as signet's [koji] table:
// the same Koji client configuration files, by absolute name.
func writeKojiTOML(w *bytes.Buffer, k client.KojiConfig) error {
	abs := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		return filepath.Abs(p)
	}
	if k.KojiConfig == "" && len(k.Instances) == 0 {
		return nil
	}
	w.WriteString("\n# Koji instances, from Sigul's [koji] section: sign-rpm and sign-rpms\n# look packages named by N-V-R.A up there (-k NAME).\n[koji]\n")
	if k.KojiConfig != "" {
		p, err := abs(k.KojiConfig)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "koji-config = %s\n", strconv.Quote(p))
	}
	for _, name := range k.InstanceNames() {
		p, err := abs(k.Instances[name].KojiConfig)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "[koji.instances.%s]\nkoji-config = %s\n", tomlKey(name), strconv.Quote(p))
	}
	return nil
}

// tomlKey returns name as a TOML key: bare if it may be, else quoted.
func tomlKey(name string) string {
	if name != "" && strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == "" {
		return name
	}
	return strconv.Quote(name)
}

// runTool runs a program and returns its standard output; its standard
// error goes into the error.
func runTool(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = nil
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		clear(out.Bytes())
		return nil, fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// nssTrustedCAs returns, in PEM, the certificates the NSS database
// trusts as CAs for TLS servers (SSL trust flag C), which issued the
// bridge's and the server's certificates.
func nssTrustedCAs(db string) ([]byte, error) {
	list, err := runTool("certutil", "-L", "-d", db)
	if err != nil {
		return nil, fmt.Errorf("listing the certificates in %s: %w", db, err)
	}
	var out bytes.Buffer
	var nicks []string
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " ")
		i := strings.LastIndexAny(line, " \t")
		if i < 0 {
			continue
		}
		nick, trust := strings.TrimSpace(line[:i]), line[i+1:]
		parts := strings.Split(trust, ",")
		if nick == "" || len(parts) != 3 || !strings.Contains(parts[0], "C") {
			continue
		}
		p, err := runTool("certutil", "-L", "-d", db, "-n", nick, "-a")
		if err != nil {
			return nil, fmt.Errorf("exporting CA certificate %q: %w", nick, err)
		}
		out.Write(p)
		nicks = append(nicks, nick)
	}
	if len(nicks) == 0 {
		return nil, fmt.Errorf("%s trusts no CA for TLS (no certificate with trust flag C in certutil -L -d %s): the bridge's certificate could not be checked", db, db)
	}
	return out.Bytes(), nil
}

// splitClientPEM takes openssl pkcs12's output and returns the client
// certificate (then any intermediate CA certificates) and its private
// key, as PEM.
func splitClientPEM(b []byte) (certPEM, keyPEM []byte, err error) {
	var certs []*pem.Block
	var key *pem.Block
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		blk.Headers = nil
		switch {
		case blk.Type == "CERTIFICATE":
			certs = append(certs, blk)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
			if key != nil {
				return nil, nil, errors.New("more than one private key exported")
			}
			key = blk
		}
	}
	if key == nil {
		return nil, nil, errors.New("no private key exported")
	}
	keyPEM = pem.EncodeToMemory(key)
	clear(key.Bytes)
	var leaf *pem.Block
	for _, c := range certs {
		if _, err := tls.X509KeyPair(pem.EncodeToMemory(c), keyPEM); err == nil {
			leaf = c
			break
		}
	}
	if leaf == nil {
		clear(keyPEM)
		return nil, nil, errors.New("no exported certificate matches the private key")
	}
	certPEM = pem.EncodeToMemory(leaf)
	for _, c := range certs {
		if c == leaf {
			continue
		}
		if x, err := x509.ParseCertificate(c.Bytes); err == nil && x.IsCA && !bytes.Equal(x.RawIssuer, x.RawSubject) {
			certPEM = append(certPEM, pem.EncodeToMemory(c)...)
		}
	}
	return certPEM, keyPEM, nil
}

// createNew writes a new file atomically (a temporary file linked into
// place), refusing to replace an existing one.
func createNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: refusing to overwrite it", path)
		}
		return err
	}
	return nil
}
