package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/daemon/doctor"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// doctorJSON runs `doctor --json` in-process and indexes its checks by name.
func doctorJSON(t *testing.T, args ...string) (doctor.Report, map[string]doctor.Result, error) {
	t.Helper()
	stdout, stderr, err := runCmd(t, newDoctorCmd(), append([]string{"--json"}, args...)...)
	var r doctor.Report
	if jerr := json.Unmarshal([]byte(stdout), &r); jerr != nil {
		t.Fatalf("doctor --json: %v\nstdout:\n%s\nstderr:\n%s", jerr, stdout, stderr)
	}
	byName := map[string]doctor.Result{}
	for _, c := range r.Checks {
		byName[c.Name] = c
	}
	t.Logf("doctor: %s", stdout)
	return r, byName, err
}

func writeDoctorConfig(t *testing.T, broker, stateDir string) string {
	t.Helper()
	backbone, head := testenv.Models(t)
	body := fmt.Sprintf(`device_id: doc
state_dir: %s
mqtt:
  broker: %s
model:
  backbone: %s
  head: %s
  runtime: %s
faces:
  detector: haar
cameras:
  - name: clip
    source: %s
`, stateDir, broker, backbone, head, testenv.ORTLibrary(t), capturetest.Clip(t))
	p := filepath.Join(t.TempDir(), "deepfaked.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDoctorIntegration(t *testing.T) {
	testenv.Long(t)
	cfg := writeDoctorConfig(t, testenv.Mosquitto(t), filepath.Join(t.TempDir(), "state"))
	r, checks, err := doctorJSON(t, "--config", cfg, "--timing", "300ms")
	if err != nil {
		t.Fatalf("doctor: %v (summary %+v)", err, r.Summary)
	}
	for _, name := range []string{"cpu", "runtime", "gpu", "opencv", "config", "camera clip", "models", "broker", "state_dir", "timing"} {
		c, ok := checks[name]
		if !ok {
			t.Errorf("no %q check", name)
			continue
		}
		switch name {
		case "cpu", "gpu": // depend on the machine
		default:
			if c.Status != doctor.StatusOK {
				t.Errorf("%s: %+v, want ok", name, c)
			}
		}
	}
	if c := checks["runtime"]; !strings.Contains(c.Detail, "ONNX Runtime 1.") || !strings.Contains(c.Detail, "cpu") {
		t.Errorf("runtime: %+v, want its version and providers", c)
	}
	if c := checks["models"]; !strings.Contains(c.Detail, "backbone ") || !strings.Contains(c.Detail, "fp32") {
		t.Errorf("models: %+v, want ids and precision", c)
	}
	if c := checks["timing"]; !strings.Contains(c.Detail, "faces/s") || !strings.Contains(c.Detail, "ms per face") {
		t.Errorf("timing: %+v", c)
	}
	if r.Summary.Errors != 0 || r.Summary.OK < 8 {
		t.Errorf("summary %+v", r.Summary)
	}
}

func TestDoctorBrokerDownStateDirUnwritable(t *testing.T) {
	// Under a regular file no one, root included, can create the directory.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	cfg := writeDoctorConfig(t, broker, filepath.Join(file, "state"))
	r, checks, err := doctorJSON(t, "--config", cfg, "--timing", "0")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("doctor: err %v, want exit status 1", err)
	}
	for _, name := range []string{"broker", "state_dir"} {
		if c := checks[name]; c.Status != doctor.StatusError || c.Fix == "" {
			t.Errorf("%s: %+v, want an error with a fix", name, c)
		}
	}
	if c := checks["models"]; c.Status != doctor.StatusOK {
		t.Errorf("models: %+v, want ok", c)
	}
	if _, ok := checks["timing"]; ok {
		t.Error("timing ran with --timing 0")
	}
	if r.Summary.Errors < 2 || r.Summary.Status != doctor.StatusError {
		t.Errorf("summary %+v", r.Summary)
	}
}

func TestDoctorNoConfig(t *testing.T) {
	t.Setenv("DEEPFAKED_ORT_LIB", testenv.ORTLibrary(t))
	r, checks, err := doctorJSON(t, "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil {
		t.Fatal("doctor without a config: exit status 0")
	}
	if c := checks["config"]; c.Status != doctor.StatusError || !strings.Contains(c.Fix, "configs/") {
		t.Errorf("config: %+v", c)
	}
	for _, name := range []string{"cpu", "runtime", "gpu", "opencv"} {
		if _, ok := checks[name]; !ok {
			t.Errorf("no %q check without a config", name)
		}
	}
	if r.Summary.Errors != 1 {
		t.Errorf("summary %+v, want the one config error", r.Summary)
	}
	if slices.ContainsFunc(r.Checks, func(c doctor.Result) bool { return c.Name == "models" }) {
		t.Error("models checked without a config")
	}
}

// A broker that answers TCP but refuses the session (here: no anonymous
// clients) is an error of its own, not "unreachable", and says the broker's
// answer (MQTT 3.1.1's "not Authorized", not a 3.1 retry's refusal).
func TestDoctorBrokerRefusesSession(t *testing.T) {
	testenv.Long(t)
	broker := testenv.StartMosquitto(t, "allow_anonymous false\n").URL()
	_, checks, _ := doctorJSON(t, "--config", writeDoctorConfig(t, broker, t.TempDir()), "--timing", "0")
	r := checks["broker"]
	if r.Status != doctor.StatusError || !strings.Contains(r.Detail, "TCP connects, but no MQTT session in 3s: not Authorized") || !strings.Contains(r.Fix, "mqtt.username") {
		t.Errorf("broker check = %+v", r)
	}
}
