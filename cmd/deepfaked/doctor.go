package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/sysinfo"
)

// Check statuses, as printed and in --json.
const (
	statusOK      = "ok"
	statusWarning = "warning"
	statusError   = "error"
)

// checkResult is one line of `deepfaked doctor`: what was found and, when it
// is not ok, what to do about it.
type checkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"` // "" when ok; always present, so scripts need no default
}

func okResult(name, format string, args ...any) checkResult {
	return checkResult{Name: name, Status: statusOK, Detail: fmt.Sprintf(format, args...)}
}

func warnResult(name, detail, fix string) checkResult {
	return checkResult{Name: name, Status: statusWarning, Detail: detail, Fix: fix}
}

func errResult(name, detail, fix string) checkResult {
	return checkResult{Name: name, Status: statusError, Detail: detail, Fix: fix}
}

// doctorSummary counts the checks by status; Status is the worst of them.
type doctorSummary struct {
	OK       int    `json:"ok"`
	Warnings int    `json:"warnings"`
	Errors   int    `json:"errors"`
	Status   string `json:"status"`
}

// doctorReport is what --json prints: one object, so a script reads it whole.
type doctorReport struct {
	Checks  []checkResult `json:"checks"`
	Summary doctorSummary `json:"summary"`
}

func summarize(checks []checkResult) doctorSummary {
	s := doctorSummary{Status: statusOK}
	for _, c := range checks {
		switch c.Status {
		case statusOK:
			s.OK++
		case statusWarning:
			s.Warnings++
		default: // an unknown status is not trusted as fine
			s.Errors++
		}
	}
	switch {
	case s.Errors > 0:
		s.Status = statusError
	case s.Warnings > 0:
		s.Status = statusWarning
	}
	return s
}

// exitCode is 1 when any check is an error: warnings are things that work,
// if less well, so a provisioning script can gate on errors alone.
func (s doctorSummary) exitCode() int {
	if s.Errors > 0 {
		return 1
	}
	return 0
}

func printDoctor(w io.Writer, r doctorReport) {
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	for _, c := range r.Checks {
		line := fmt.Sprintf("%-7s  %-*s  %s", c.Status, width, c.Name, c.Detail)
		if c.Fix != "" {
			line += " -- fix: " + c.Fix
		}
		fmt.Fprintln(w, line)
	}
	s := r.Summary
	fmt.Fprintf(w, "%d ok, %d warning(s), %d error(s)\n", s.OK, s.Warnings, s.Errors)
}

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
			checks := runDoctor(cmd, cfg, cfgErr, timing, log)
			r := doctorReport{Checks: checks, Summary: summarize(checks)}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return fmt.Errorf("doctor: %w", err)
				}
			} else {
				printDoctor(cmd.OutOrStdout(), r)
			}
			if code := r.Summary.exitCode(); code != 0 {
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

// runDoctor runs the checks in order: the machine's first, so that they
// run whatever the config says, then the config's.
func runDoctor(cmd *cobra.Command, cfg *config.Config, cfgErr error, timing time.Duration, log *slog.Logger) []checkResult {
	cpu := sysinfo.ReadCPU()
	checks := []checkResult{checkCPU(cpu)}

	lib, providers := engine.DefaultLibrary(), []string(nil)
	if cfg != nil {
		if cfg.Model.Runtime != "" {
			lib = cfg.Model.Runtime
		}
		providers = cfg.Model.Providers
	}
	rt, have := checkRuntime(lib, cfg)
	checks = append(checks, rt)
	checks = append(checks, checkGPU(sysinfo.ReadGPU("/"), have, providers))
	checks = append(checks, checkOpenCV(cfg))
	checks = append(checks, checkVideoDevices("/")...)

	if cfg == nil {
		return append(checks, errResult("config", cfgErr.Error(), configFix(cfgErr)))
	}
	checks = append(checks, checkConfig(cfg, log))
	checks = append(checks, checkCameras(cfg)...)
	models, perFace := checkModels(cfg, log)
	checks = append(checks, models)
	checks = append(checks, checkBroker(cmd.Context(), cfg))
	checks = append(checks, checkStateDir(cfg.StateDir))
	if timing > 0 && models.Status == statusOK {
		checks = append(checks, checkTiming(cfg, timing, perFace))
	}
	return checks
}

// configFix says what to do about a config that does not load: a missing
// file is the common case on a new board.
func configFix(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "copy one of configs/*.yaml to /etc/deepfaked/deepfaked.yaml and edit it, or pass --config"
	}
	return "correct the key the message names (docs/configuration.md lists them all)"
}

// oneLine keeps a multi-line error on the check's one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
