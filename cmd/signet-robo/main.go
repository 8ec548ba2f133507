// Command signet-robo is signet's automatic signer (the robosignatory
// role): it consumes signing requests from an AMQP broker and signs them
// through the signet client library (see package robo).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/secret"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/cmd/internal/version"
	"github.com/signet-project/signet/robo"
)

const defaultConfig = "/etc/signet/robo.toml"

func main() {
	// It holds PINs or passphrases: no core dumps, no ptrace.
	if err := secret.Harden(); err != nil {
		fmt.Fprintln(os.Stderr, "signet-robo:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "signet-robo:", err)
		os.Exit(1)
	}
}

type app struct {
	configPath string
}

func newRoot() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "signet-robo",
		Short: "signet's automatic signer: signs what the build system announces on an AMQP broker",
		Long: `signet-robo subscribes to an AMQP 0-9-1 broker (RabbitMQ) with the
fedora-messaging conventions, signs the artifacts, packages, images and XML
documents it is asked to sign through a signet bridge and server, and publishes
the outcome. As robosignatory does, it also signs the RPMs of Koji builds
tagged into a signing tag (stored in Koji, then the build is moved on) and the
OSTree commits pungi composes. Passphrases are read from files named in the configuration.

` + robo.ConfigHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", defaultConfig, "configuration file (TOML)")
	root.AddCommand(&cobra.Command{
		Use:   "run",
		Short: "Consume and sign until SIGTERM or SIGINT",
		Long: `run connects to the broker (reconnecting with backoff when it goes away),
declares its queues and bindings, and processes messages. On SIGTERM or SIGINT
it stops consuming, lets the messages in flight finish (up to
amqp.shutdown_timeout), and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.run(cmd.Context()) },
	}, &cobra.Command{
		Use:   "check-config",
		Short: "Check the configuration and the passphrase files, then exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := a.load(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	})
	version.Setup(root)
	return root
}

func (a *app) load() (*robo.Robo, *robo.Config, error) {
	cfg, err := robo.LoadConfigFile(a.configPath)
	if err != nil {
		return nil, nil, err
	}
	var level slog.Level
	if cfg.LogLevel != "" {
		if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
			return nil, nil, fmt.Errorf("configuration log_level %q: use debug, info, warn or error", cfg.LogLevel)
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if cfg.ClientConfig == "" {
		return nil, nil, fmt.Errorf("configuration: client_config is not set")
	}
	ccfg, err := client.LoadConfig(cfg.ClientConfig)
	if err != nil {
		return nil, nil, err
	}
	cfg.ApplyBridges(ccfg)
	if err := ccfg.Validate(); err != nil {
		return nil, nil, err
	}
	c, err := client.New(ccfg)
	if err != nil {
		return nil, nil, err
	}
	c.Log = log
	r, err := robo.New(cfg, c, log)
	if err != nil {
		return nil, nil, err
	}
	return r, cfg, nil
}

func (a *app) run(ctx context.Context) error {
	r, cfg, err := a.load()
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		addr, err := r.ServeMetrics(ctx, cfg.MetricsListen)
		if err != nil {
			return err
		}
		r.Logger().Info("metrics endpoint listening", "metrics_listen", addr)
	}
	err = r.Run(ctx)
	r.Logger().Info("signet-robo stopped")
	return err
}
