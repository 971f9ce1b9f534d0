// Package doctor is `deepfaked doctor` without the command line: one check
// per thing that decides whether the daemon will work on this machine (the
// CPU's INT8 features, ONNX Runtime and its providers, GPUs, OpenCV's video
// back-ends, V4L2 cameras) and, with a config, what it names (the config's
// checks, cameras, models, broker, state directory, a timing of the model),
// each with what to do when it is not ok.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/sysinfo"
)

// Check statuses, as printed and in --json.
const (
	StatusOK      = "ok"
	StatusWarning = "warning"
	StatusError   = "error"
)

// Result is one line of `deepfaked doctor`: what was found and, when it
// is not ok, what to do about it.
type Result struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"` // "" when ok; always present, so scripts need no default
}

func okResult(name, format string, args ...any) Result {
	return Result{Name: name, Status: StatusOK, Detail: fmt.Sprintf(format, args...)}
}

func warnResult(name, detail, fix string) Result {
	return Result{Name: name, Status: StatusWarning, Detail: detail, Fix: fix}
}

func errResult(name, detail, fix string) Result {
	return Result{Name: name, Status: StatusError, Detail: detail, Fix: fix}
}

// Summary counts the checks by status; Status is the worst of them.
type Summary struct {
	OK       int    `json:"ok"`
	Warnings int    `json:"warnings"`
	Errors   int    `json:"errors"`
	Status   string `json:"status"`
}

// Report is what --json prints: one object, so a script reads it whole.
type Report struct {
	Checks  []Result `json:"checks"`
	Summary Summary  `json:"summary"`
}

func Summarize(checks []Result) Summary {
	s := Summary{Status: StatusOK}
	for _, c := range checks {
		switch c.Status {
		case StatusOK:
			s.OK++
		case StatusWarning:
			s.Warnings++
		default: // an unknown status is not trusted as fine
			s.Errors++
		}
	}
	switch {
	case s.Errors > 0:
		s.Status = StatusError
	case s.Warnings > 0:
		s.Status = StatusWarning
	}
	return s
}

// ExitCode is 1 when any check is an error: warnings are things that work,
// if less well, so a provisioning script can gate on errors alone.
func (s Summary) ExitCode() int {
	if s.Errors > 0 {
		return 1
	}
	return 0
}

func Print(w io.Writer, r Report) {
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

// Run runs the checks in order: the machine's first, so that they
// run whatever the config says, then the config's.
func Run(ctx context.Context, cfg *config.Config, cfgErr error, timing time.Duration, log *slog.Logger) []Result {
	cpu := sysinfo.ReadCPU()
	checks := []Result{checkCPU(cpu)}

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
	checks = append(checks, checkDecoders(capture.Registry{}))
	checks = append(checks, checkVideoDevices("/")...)

	if cfg == nil {
		return append(checks, errResult("config", cfgErr.Error(), configFix(cfgErr)))
	}
	checks = append(checks, checkConfig(cfg, log))
	checks = append(checks, checkCameras(cfg)...)
	models, perFace := checkModels(cfg, log)
	checks = append(checks, models)
	checks = append(checks, checkBroker(ctx, cfg))
	checks = append(checks, checkStateDir(cfg.StateDir))
	if timing > 0 && models.Status == StatusOK {
		checks = append(checks, checkTiming(cfg, timing, perFace, log))
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
