package rabbitmqtest

import (
	"os"
	"path/filepath"

	"github.com/signet-project/signet/internal/testpki"
)

// writePKI creates, under Dir/pki, a CA, the broker's certificate (for
// 127.0.0.1 and localhost) and a client certificate whose common name is
// ExternalUser.
func (b *Broker) writePKI() error {
	dir := filepath.Join(b.Dir, "pki")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ca, err := testpki.NewCA("rabbitmqtest CA")
	if err != nil {
		return err
	}
	// Key files are readable by the broker, which runs as the rabbitmq
	// user and owns the directory after prepare.
	issue := func(name string, l testpki.Leaf) error {
		c, err := ca.Issue(l)
		if err != nil {
			return err
		}
		return c.Write(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	}
	b.CAFile = filepath.Join(dir, "ca.pem")
	b.ClientCert, b.ClientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	if err := ca.WriteCert(b.CAFile); err != nil {
		return err
	}
	if err := issue("server", testpki.Leaf{CN: "localhost", DNSNames: []string{"localhost"}, IPs: testpki.Loopback, EKU: testpki.Server}); err != nil {
		return err
	}
	return issue("client", testpki.Leaf{CN: b.ExternalUser, EKU: testpki.Client})
}
