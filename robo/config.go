package robo

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/viper"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/internal/configfile"
	"github.com/signet-project/signet/internal/metricsserver"
)

// Kind names, as they appear in the configuration, logs and metrics.
const (
	KindArtifacts = "artifacts-sign"
	KindPackages  = "packages"
	KindXML       = "xml-sign"
	KindTag       = "tag-sign"
	KindOSTree    = "ostree-sign"
)

// Config is signet-robo's configuration. ConfigHelp documents it.
type Config struct {
	// ClientConfig is the signet client configuration (bridge, CA, client
	// certificate, user name): see client.LoadConfig.
	ClientConfig string `mapstructure:"client_config"`
	// Bridges, if set, replaces the client configuration's bridges
	// ("host" or "host:port"): signet-robo tries them in order and moves
	// to the next when one refuses or is down (client.RetryPolicy).
	Bridges       []string `mapstructure:"bridges"`
	MetricsListen string   `mapstructure:"metrics_listen"`
	LogLevel      string   `mapstructure:"log_level"`
	// WorkDir holds downloads while they are checked and signed (default:
	// the system's temporary directory).
	WorkDir string `mapstructure:"work_dir"`

	AMQP AMQPConfig `mapstructure:"amqp"`

	Artifacts KindConfig `mapstructure:"artifacts_sign"`
	Packages  KindConfig `mapstructure:"packages"`
	XML       KindConfig `mapstructure:"xml_sign"`
	// Tag is robosignatory's TagSigner (buildsys.tag), OSTree its
	// AtomicSigner (pungi.compose.ostree): see tagconfig.go.
	Tag    TagConfig    `mapstructure:"tag_sign"`
	OSTree OSTreeConfig `mapstructure:"ostree_sign"`
}

// AMQPConfig says where to consume and publish.
type AMQPConfig struct {
	URL string `mapstructure:"url"`
	// TLS, for amqps:// URLs: the CA that issued the broker's certificate
	// and, for SASL EXTERNAL, the client certificate and key.
	TLS struct {
		CA         string `mapstructure:"ca"`
		Cert       string `mapstructure:"cert"`
		Key        string `mapstructure:"key"`
		ServerName string `mapstructure:"server_name"`
		// External authenticates with the client certificate (SASL
		// EXTERNAL, rabbitmq_auth_mechanism_ssl) instead of the URL's
		// user and password.
		External bool `mapstructure:"external"`
	} `mapstructure:"tls"`
	Exchange           string `mapstructure:"exchange"`
	Queue              string `mapstructure:"queue"`
	Prefetch           int    `mapstructure:"prefetch"`
	Concurrency        int    `mapstructure:"concurrency"`
	RetryDelay         string `mapstructure:"retry_delay"`
	MaxAttempts        int    `mapstructure:"max_attempts"`
	DeadLetterExchange string `mapstructure:"dead_letter_exchange"`
	DeadLetterQueue    string `mapstructure:"dead_letter_queue"`
	ReconnectMin       string `mapstructure:"reconnect_min"`
	ReconnectMax       string `mapstructure:"reconnect_max"`
	PublishTimeout     string `mapstructure:"publish_timeout"`
	ShutdownTimeout    string `mapstructure:"shutdown_timeout"`

	retryDelay, reconnectMin, reconnectMax, publishTimeout, shutdownTimeout time.Duration
}

// KindConfig configures one message kind.
type KindConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// RoutingKeys are bound to the queue on the exchange (AMQP topic
	// patterns); a message is of this kind when its routing key matches
	// one of them.
	RoutingKeys []string `mapstructure:"routing_keys"`
	// Schemas are the accepted fedora_messaging_schema header values.
	Schemas []string `mapstructure:"schemas"`
	// Key and PassphraseFile: the signing key (artifacts-sign, xml-sign,
	// and the packages kind's only key when Keys is empty). CertName is
	// the certificate for EFI images.
	Key            string `mapstructure:"key"`
	PassphraseFile string `mapstructure:"passphrase_file"`
	CertName       string `mapstructure:"cert_name"`
	// Keys lists the keys a packages request may name.
	Keys []KeyConfig `mapstructure:"keys"`
	// Armor makes ASCII-armored detached signatures (artifacts-sign).
	Armor bool `mapstructure:"armor"`
	// OutputDir receives signatures (artifacts-sign) or signed files
	// (packages). PutBaseURL, instead, receives each artifact's signature
	// by HTTP PUT at PutBaseURL/<name>.sig. With neither, artifacts-sign
	// stores the signature beside the artifact (file: path.sig; http(s):
	// PUT to URL.sig).
	OutputDir  string `mapstructure:"output_dir"`
	PutBaseURL string `mapstructure:"put_base_url"`
	// AllowedSources are the directories (file, http or https URLs)
	// artifacts may be fetched from, and so where a signature may be
	// stored beside its artifact; required where artifacts are fetched.
	// See sources.go for how a URL is matched.
	AllowedSources []string `mapstructure:"allowed_sources"`

	sources sourcePolicy
}

// KeyConfig is one key a packages request may use.
type KeyConfig struct {
	Name           string `mapstructure:"name"`
	PassphraseFile string `mapstructure:"passphrase_file"`
	CertName       string `mapstructure:"cert_name"`
}

// ConfigHelp describes the configuration file.
const ConfigHelp = `Configuration (TOML, --config):

  client_config  = "/etc/signet/robo-client.toml"  signet client configuration (bridge,
                                                  CA, client certificate, user-name)
  bridges = ["bridge1.example.org", "bridge2.example.org:44334"]
                                                  optional: replaces the client configuration's
                                                  bridges; tried in order, failing over
  metrics_listen = "127.0.0.1:9336"               Prometheus /metrics; loopback only; empty: off
  log_level      = "info"                         debug, info, warn or error (JSON on stderr)
  work_dir       = "/var/tmp"                     downloads while they are checked and signed

  [amqp]
  url          = "amqps://broker.example.org/%2Fpubsub"   or amqp://user:password@host/vhost
  exchange     = "amq.topic"                    topic exchange to bind to and publish on
  queue        = "signet-robo"                  durable queue (competing consumers share it)
  prefetch     = 8                              unacknowledged messages held at once
  concurrency  = 4                              messages processed at once
  retry_delay  = "30s"                          a transient failure is retried after this
  max_attempts = 5                              then the message is dead-lettered
  dead_letter_exchange = "signet-robo.dead-letter"   rejected and exhausted messages
  dead_letter_queue    = "signet-robo.dead-letter"   bound to it with "#"; empty: none
  reconnect_min = "500ms"                       backoff after the broker goes away,
  reconnect_max = "30s"                         doubling up to this
  publish_timeout  = "30s"                      wait for a publisher confirm
  shutdown_timeout = "5m"                       SIGTERM: work in flight gets this long
  [amqp.tls]                                    for amqps://
  ca = "/etc/signet/broker-ca.pem"
  cert = "/etc/signet/robo.pem"                 client certificate
  key  = "/etc/signet/robo-key.pem"
  external = true                               SASL EXTERNAL (the certificate is the login)

  [artifacts_sign]                              CoreOS artifacts-sign requests
  enabled = true
  routing_keys = ["org.fedoraproject.prod.coreos.build.request.artifacts-sign"]
  schemas = ["base.message"]                    accepted fedora_messaging_schema headers
  key = "fedora-43"
  passphrase_file = "/etc/signet/fedora-43.pass"
  armor = false
  output_dir = ""                               or put_base_url = "https://...";
                                                neither: the .sig goes beside the artifact
  allowed_sources = ["https://builds.example.org/pub/", "file:///srv/builds/"]
                                                directories artifacts may come from
                                                (required; same scheme, exact host and
                                                port, path segment by segment; local
                                                files after resolving symbolic links;
                                                redirects only to these)

  [packages]                                    signet package and image requests
  enabled = true
  routing_keys = ["org.signet.prod.request.sign-packages"]
  output_dir = "/srv/signed"                    results go to output_dir/<destination>/
  allowed_sources = ["file:///srv/builds/"]     as above (required)
  [[packages.keys]]
  name = "fedora-43"
  passphrase_file = "/etc/signet/fedora-43.pass"
  [[packages.keys]]
  name = "fedora-sb"
  passphrase_file = "/etc/signet/fedora-sb.pass"
  cert_name = "signer"                          default certificate for EFI images

  [xml_sign]                                    the body is the XML document; it must
  enabled = true                                begin with <?xml version="1.0" (byte for byte)
  routing_keys = ["org.signet.prod.request.xml-sign"]
  key = "fedora-43"
  passphrase_file = "/etc/signet/fedora-43.pass"

  [tag_sign]                                    Koji buildsys.tag (robosignatory's TagSigner)
  enabled = true
  routing_keys = ["org.fedoraproject.prod.buildsys.tag"]
  move_timeout = "15m"                          bound on the wait for the moveBuild task
  [[tag_sign.instances]]
  name = "primary"                              the messages' "instance"
  client_instance = "koji"                      the signet client's Koji instance (default: name)
  hub = "https://koji.example.org/kojihub"
  cert = "/etc/signet/robo-koji.pem"            signet-robo's own Koji login (certificate and
  key = ""                                      key, or the key apart); it writes signed copies
  ca = "/etc/signet/koji-ca.pem"                and moves builds: Koji permissions sign and tag
  [[tag_sign.rules]]
  instance = "primary"                          default: the only instance
  from = "f43-signing-pending"                  builds tagged here are signed (every RPM not
  to = "f43-updates-testing-pending"            yet signed under sigkey), written, moved here
  key = "fedora-43"
  passphrase_file = "/etc/signet/fedora-43.pass"
  sigkey = "31645531"                           Koji's name of the key's signatures
  file_signing_key = ""                         optional: IMA signatures with this key
  file_signing_passphrase_file = ""
  v3_signature = false
  trusted_taggers = []                          optional: only these users' taggings count
  [tag_sign.rules.sidetags]                     optional: side tags of this rule
  pattern = "<to>-build-side-<seq_id>"          <from>, <to>: the rule's tags
  from = "<sidetag>-signing-pending"
  to = "<sidetag>-testing-pending"
  trusted_taggers = ["bodhi"]                   required: who may tag into a side tag's from

  [ostree_sign]                                 pungi.compose.ostree (robosignatory's AtomicSigner)
  enabled = true
  routing_keys = ["org.fedoraproject.prod.pungi.compose.ostree"]
  [[ostree_sign.refs]]                          only these refs, only in these repositories
  ref = "fedora/43/x86_64/silverblue"
  repo = "/mnt/koji/ostree/repo"
  key = "fedora-43"
  passphrase_file = "/etc/signet/fedora-43.pass"
  update_ref = true                             point refs/heads/<ref> at the signed commit`

// LoadConfigFile reads a TOML configuration file strictly: an unknown key
// is an error naming the closest known one.
func LoadConfigFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration %s: %w", path, err)
	}
	defer f.Close()
	return LoadConfig(f, path)
}

// LoadConfig reads, decodes and checks a TOML configuration (name is the
// file name used in messages), filling in defaults.
func LoadConfig(r io.Reader, name string) (*Config, error) {
	var c Config
	if err := configfile.Read(viper.New(), r, name, &c); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) check() error {
	a := &c.AMQP
	if a.URL == "" {
		return errors.New("configuration: amqp.url is not set")
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") {
		return errors.New("configuration: amqp.url must be an amqp:// or amqps:// URL")
	}
	if a.TLS.External && u.Scheme != "amqps" {
		return errors.New("configuration: amqp.tls.external needs an amqps:// URL")
	}
	if a.TLS.External && (a.TLS.Cert == "" || a.TLS.Key == "") {
		return errors.New("configuration: amqp.tls.external needs amqp.tls.cert and amqp.tls.key")
	}
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&a.Exchange, "amq.topic")
	def(&a.Queue, "signet-robo")
	def(&a.DeadLetterExchange, "signet-robo.dead-letter")
	if a.Prefetch <= 0 {
		a.Prefetch = 8
	}
	if a.Concurrency <= 0 {
		a.Concurrency = 4
	}
	if a.Concurrency > a.Prefetch {
		a.Prefetch = a.Concurrency
	}
	if a.MaxAttempts <= 0 {
		a.MaxAttempts = 5
	}
	for _, d := range []struct {
		key string
		raw string
		def time.Duration
		dst *time.Duration
	}{
		{"retry_delay", a.RetryDelay, 30 * time.Second, &a.retryDelay},
		{"reconnect_min", a.ReconnectMin, 500 * time.Millisecond, &a.reconnectMin},
		{"reconnect_max", a.ReconnectMax, 30 * time.Second, &a.reconnectMax},
		{"publish_timeout", a.PublishTimeout, 30 * time.Second, &a.publishTimeout},
		{"shutdown_timeout", a.ShutdownTimeout, 5 * time.Minute, &a.shutdownTimeout},
	} {
		*d.dst = d.def
		if d.raw == "" {
			continue
		}
		v, err := time.ParseDuration(d.raw)
		if err != nil || v <= 0 {
			return fmt.Errorf("configuration: amqp.%s = %q is not a duration such as \"30s\"", d.key, d.raw)
		}
		*d.dst = v
	}
	if a.reconnectMax < a.reconnectMin {
		a.reconnectMax = a.reconnectMin
	}
	if len(c.Bridges) > 0 {
		if _, err := (&client.Config{Bridges: c.Bridges}).BridgeAddrs(); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
	}
	if c.MetricsListen != "" {
		if err := metricsserver.CheckLoopback(c.MetricsListen); err != nil {
			return fmt.Errorf("configuration: metrics_listen: %w", err)
		}
	}
	kinds := 0
	for name, k := range c.kinds() {
		if !k.Enabled {
			continue
		}
		kinds++
		if len(k.RoutingKeys) == 0 {
			return fmt.Errorf("configuration: [%s] is enabled but has no routing_keys", name)
		}
		if len(k.Schemas) == 0 {
			k.Schemas = []string{"base.message", "signet." + name + ".v1"}
		}
		if name != KindXML && len(k.AllowedSources) == 0 {
			return fmt.Errorf("configuration: [%s] needs allowed_sources, the file, http or https directories artifacts may come from (there is no default: an empty list would allow any URL)", name)
		}
		var err error
		if k.sources, err = newSourcePolicy(k.AllowedSources); err != nil {
			return fmt.Errorf("configuration: [%s] allowed_sources: %w", name, err)
		}
		switch name {
		case KindPackages:
			if k.OutputDir == "" {
				return fmt.Errorf("configuration: [%s] needs output_dir", name)
			}
			if len(k.Keys) == 0 && k.Key != "" {
				k.Keys = []KeyConfig{{Name: k.Key, PassphraseFile: k.PassphraseFile, CertName: k.CertName}}
			}
			if len(k.Keys) == 0 {
				return fmt.Errorf("configuration: [%s] names no key", name)
			}
			for _, kc := range k.Keys {
				if kc.Name == "" || kc.PassphraseFile == "" {
					return fmt.Errorf("configuration: [%s] every key needs a name and a passphrase_file", name)
				}
			}
		default:
			if k.Key == "" || k.PassphraseFile == "" {
				return fmt.Errorf("configuration: [%s] needs key and passphrase_file", name)
			}
		}
		if k.OutputDir != "" && k.PutBaseURL != "" {
			return fmt.Errorf("configuration: [%s] sets both output_dir and put_base_url", name)
		}
		if k.PutBaseURL != "" {
			if u, err := url.Parse(k.PutBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				return fmt.Errorf("configuration: [%s] put_base_url must be an http(s) URL", name)
			}
		}
		if k.OutputDir != "" {
			if fi, err := os.Stat(k.OutputDir); err != nil || !fi.IsDir() {
				return fmt.Errorf("configuration: [%s] output_dir %s is not a directory", name, k.OutputDir)
			}
			k.OutputDir, _ = filepath.Abs(k.OutputDir)
		}
	}
	for _, check := range []func() (bool, error){c.Tag.check, c.OSTree.check} {
		enabled, err := check()
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		if enabled {
			kinds++
		}
	}
	if kinds == 0 {
		return errors.New("configuration: no message kind is enabled ([artifacts_sign], [packages], [xml_sign], [tag_sign] or [ostree_sign] with enabled = true)")
	}
	return nil
}

// ApplyBridges puts the configuration's bridges, if it lists any, in place
// of the client configuration's.
func (c *Config) ApplyBridges(cc *client.Config) {
	if len(c.Bridges) > 0 {
		cc.BridgeHost = ""
		cc.Bridges = append([]string(nil), c.Bridges...)
	}
}

// kinds maps each kind's name to its settings.
func (c *Config) kinds() map[string]*KindConfig {
	return map[string]*KindConfig{KindArtifacts: &c.Artifacts, KindPackages: &c.Packages, KindXML: &c.XML}
}
