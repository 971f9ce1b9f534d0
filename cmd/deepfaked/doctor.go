package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/doctor"
)

func newDoctorCmd() *cobra.Command {
	var (
		path   string
		asJSON bool
		timing time.Duration
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check what will work on this machine: CPU, ONNX Runtime, GPU, OpenCV, cameras, the config, the broker, model speed",
		Long: `Check, one line each, what will work on this machine: the CPU's INT8
features, the ONNX Runtime library and its execution providers, GPUs, OpenCV's
video back-ends, V4L2 cameras, and with the configuration: the same checks as
check-config, the configured cameras, the models, the broker, the state
directory and a short timing of the model. Exit status 1 when any check is an
error; a missing configuration is one error and the machine checks still run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(slog.LevelError)
			cfg, cfgErr := config.Load(path)
			if cfgErr != nil {
				cfg = nil
			}
			checks := doctor.Run(cmd.Context(), cfg, cfgErr, timing, log)
			r := doctor.Report{Checks: checks, Summary: doctor.Summarize(checks)}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return fmt.Errorf("doctor: %w", err)
				}
			} else {
				doctor.Print(cmd.OutOrStdout(), r)
			}
			if code := r.Summary.ExitCode(); code != 0 {
				return &exitError{code: code, err: fmt.Errorf("doctor: %d check(s) failed", r.Summary.Errors)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object: the checks and a summary")
	cmd.Flags().DurationVar(&timing, "timing", 5*time.Second, "how long to time the model at batch 1 (0 skips it)")
	return cmd
}
