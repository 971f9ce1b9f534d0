package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/internal/buildinfo"
	"github.com/deepfaked/deepfaked/setup"
)

func newRunCmd() *cobra.Command {
	var (
		path  string
		watch bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: analyse the configured cameras and publish verdicts",
		Long: `Run the daemon: analyse the configured cameras and publish verdicts over MQTT.
SIGINT or SIGTERM stops capture, publishes the verdicts of frames in flight and
'offline', and exits 0. When every camera is a file that has ended, it exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			d, err := daemon.New(cmd.Context(), cfg, newLogger(setup.LogLevel(cfg)))
			if err != nil {
				return err
			}
			defer d.Close()
			if !watch {
				return errors.Join(d.Run(cmd.Context()), d.Close())
			}
			// Subscribed before the cameras start, so it sees every verdict,
			// the retained online and, at the end, offline.
			w, err := mqttc.WatchDaemon(cmd.Context(), d.MQTTOptions(), cfg.MQTT.TopicPrefix+"/#", printMessage(cmd.OutOrStdout()))
			if err != nil {
				return err
			}
			runErr := d.Run(cmd.Context())
			return errors.Join(runErr, w.Stop(), d.Close())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file")
	cmd.Flags().BoolVar(&watch, "watch", false, "also print every message under the topic prefix, as an MQTT subscriber sees it")
	return cmd
}

func newCheckConfigCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate a configuration file and the files it names; exit 0 if valid",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if err := daemon.CheckFiles(cfg); err != nil { // the same check as run's
				return &exitError{code: 2, err: err}
			}
			warnings, err := daemon.CheckLoads(cfg, newLogger(slog.LevelWarn))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (device %s, %d camera(s), broker %s)\n", path, cfg.DeviceID, len(cfg.Cameras), cfg.MQTT.Broker)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "deepfaked", buildinfo.Version())
		},
	}
}

// newLogger logs structured text to stderr (journald keeps it under systemd):
// run at log_level, the commands that draw progress at slog.LevelWarn.
func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
