package main

import (
	"github.com/signet-project/signet/internal/configfile"
)

// config is signet-server's configuration file, decoded strictly: a key
// not named here is refused at start-up with the closest known one (see
// internal/configfile). To add a setting, add a field with its key.
type config struct {
	// Database is a SQLite file path or a postgres:// URL (without a
	// password: see DatabasePasswordFile).
	Database string `mapstructure:"database"`
	// DatabasePasswordFile and DatabasePasswordCredential give the
	// PostgreSQL password: a file with private permissions, or the name
	// of a systemd credential. Neither is needed with a passfile
	// (PGPASSFILE, ~/.pgpass, the URL's passfile=) or certificate login.
	DatabasePasswordFile       string `mapstructure:"database_password_file"`
	DatabasePasswordCredential string `mapstructure:"database_password_credential"`
	Transcript                 string `mapstructure:"transcript"`
	Token                      struct {
		Module      string `mapstructure:"module"`
		Label       string `mapstructure:"label"`
		Serial      string `mapstructure:"serial"`
		MaxSessions int    `mapstructure:"max_sessions"`
		// WrapMechanism overrides the token's default key-wrap
		// mechanism for backups.
		WrapMechanism string `mapstructure:"wrap_mechanism"`
	} `mapstructure:"token"`
	KDF struct {
		Time      uint32 `mapstructure:"time"`
		MemoryKiB uint32 `mapstructure:"memory_kib"`
		Threads   uint8  `mapstructure:"threads"`
	} `mapstructure:"kdf"`
	TLS    tlsConfig      `mapstructure:"tls"`
	Bridge []bridgeConfig `mapstructure:"bridge"`
	Server struct {
		// Name names this server in the audit records it writes;
		// default the host name.
		Name                 string   `mapstructure:"name"`
		PinFile              string   `mapstructure:"pin_file"`
		PinCredential        string   `mapstructure:"pin_credential"`
		UnwrapCache          string   `mapstructure:"unwrap_cache"`
		MaxFilePayload       int64    `mapstructure:"max_file_payload"`
		SpoolDir             string   `mapstructure:"spool_dir"`
		MetricsFile          string   `mapstructure:"metrics_file"`
		MetricsInterval      string   `mapstructure:"metrics_interval"`
		LenientUsernameCheck bool     `mapstructure:"lenient_username_check"`
		ProxyUsernames       []string `mapstructure:"proxy_usernames"`
		BatchWorkers         int      `mapstructure:"batch_workers"`
		MaxRPMsPayloads      int64    `mapstructure:"max_rpms_payloads"`
		// ReuseConnections offers the bridges the extension that lets one
		// connection carry request after request (default true; unset
		// and false differ).
		ReuseConnections *bool `mapstructure:"reuse_connections"`
	} `mapstructure:"server"`
}

// tlsConfig is the [tls] table.
type tlsConfig struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	CA   string `mapstructure:"ca"`
}

// bridgeConfig is one [[bridge]] table of the configuration.
type bridgeConfig struct {
	Address    string `mapstructure:"address"`
	ServerName string `mapstructure:"server_name"`
	Idle       int    `mapstructure:"idle"`
}

// decodeConfig decodes the settings viper holds (file, defaults, bound
// flags) into a.cfg; with a file, it first reads it, refusing unknown
// keys.
func (a *app) decodeConfig(path string) error {
	a.cfg = &config{}
	if path != "" {
		return configfile.ReadFile(a.v, path, a.cfg)
	}
	return configfile.Decode(a.v, "(defaults)", a.cfg)
}
