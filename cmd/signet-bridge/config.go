package main

import (
	"github.com/signet-project/signet/internal/configfile"
)

// config is signet-bridge's configuration file, decoded strictly: a key
// not named here is refused at start-up with the closest known one (see
// internal/configfile). To add a setting, add a field with its key.
type config struct {
	ClientListen     string `mapstructure:"client_listen"`
	ServerListen     string `mapstructure:"server_listen"`
	MetricsListen    string `mapstructure:"metrics_listen"`
	LogLevel         string `mapstructure:"log_level"`
	PairingTimeout   string `mapstructure:"pairing_timeout"`
	HandshakeTimeout string `mapstructure:"handshake_timeout"`
	ClientTimeout    string `mapstructure:"client_timeout"`
	ServerTimeout    string `mapstructure:"server_timeout"`
	ShutdownTimeout  string `mapstructure:"shutdown_timeout"`
	MaxIdleServers   int    `mapstructure:"max_idle_servers"`
	// ServerReuse offers signet servers the extension that lets one
	// connection carry request after request (default true; unset and
	// false differ).
	ServerReuse                    *bool `mapstructure:"server_reuse"`
	MaxRequestsPerServerConnection *int  `mapstructure:"max_requests_per_server_connection"`
	// Byte counts are pointers: unset and 0 differ.
	MaxReplyPayload *int64   `mapstructure:"max_reply_payload"`
	MaxRPMsPayloads *int64   `mapstructure:"max_rpms_payloads"`
	ServerNames     []string `mapstructure:"server_names"`
	ProxyCNs        []string `mapstructure:"proxy_cns"`
	LenientCN       bool     `mapstructure:"lenient_cn"`
	TLS             struct {
		Cert string `mapstructure:"cert"`
		Key  string `mapstructure:"key"`
		CA   string `mapstructure:"ca"`
	} `mapstructure:"tls"`
	// Limits maps operation names to byte counts.
	Limits map[string]int64 `mapstructure:"limits"`

	// The limits of issue 11's finding 5; pointers where unset and 0 differ.
	RequestTimeout     string         `mapstructure:"request_timeout"`
	TransferGrace      string         `mapstructure:"transfer_grace"`
	MinTransferRate    *int64         `mapstructure:"min_transfer_rate"`
	MaxRequestsPerCN   *int           `mapstructure:"max_requests_per_cn"`
	MaxHandshakes      *int           `mapstructure:"max_handshakes"`
	MaxHandshakesPerIP *int           `mapstructure:"max_handshakes_per_ip"`
	MaxPendingPairings *int           `mapstructure:"max_pending_pairings"`
	RequestsPerCN      map[string]int `mapstructure:"requests_per_cn"`

	// Koji maps instance names (the clients' -k) to Koji hubs.
	Koji map[string]kojiConfig `mapstructure:"koji"`
}

// kojiConfig is one [koji.NAME] table: the hub, its topurl, and the
// bridge's client certificate (PEM; key in key, or in cert as Koji's own
// configuration has it) and the CA of the hub's certificate.
type kojiConfig struct {
	Hub     string `mapstructure:"hub"`
	TopURL  string `mapstructure:"topurl"`
	Cert    string `mapstructure:"cert"`
	Key     string `mapstructure:"key"`
	CA      string `mapstructure:"ca"`
	Timeout string `mapstructure:"timeout"`
}

// decodeConfig decodes the settings viper holds (file and bound flags)
// into a.cfg; with a file, it first reads it, refusing unknown keys.
func (a *app) decodeConfig(path string) error {
	a.cfg = &config{}
	if path != "" {
		return configfile.ReadFile(a.v, path, a.cfg)
	}
	return configfile.Decode(a.v, "(defaults)", a.cfg)
}
