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
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/sysinfo"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestDoctorCPU(t *testing.T) {
	tests := []struct {
		name     string
		cpu      sysinfo.CPU
		status   string
		contains string
	}{
		{"avx512 vnni", sysinfo.CPU{Arch: "amd64", Cores: 8, Features: []string{"avx2", "avx512f", "avx512_vnni"}}, statusOK, "AVX-512 VNNI"},
		{"avx vnni", sysinfo.CPU{Arch: "amd64", Cores: 8, Features: []string{"avx2", "avx_vnni"}}, statusOK, "AVX-VNNI"},
		{"avx2 only", sysinfo.CPU{Arch: "amd64", Cores: 4, Features: []string{"avx2"}}, statusWarning, "without VNNI"},
		{"avx512 without vnni", sysinfo.CPU{Arch: "amd64", Cores: 4, Features: []string{"avx2", "avx512f"}}, statusWarning, "without VNNI"},
		{"old x86", sysinfo.CPU{Arch: "amd64", Cores: 2}, statusWarning, "no AVX2"},
		{"arm64 dotprod", sysinfo.CPU{Arch: "arm64", Cores: 4, Features: []string{"asimd", "asimddp"}}, statusOK, "asimddp"},
		{"raspberry pi 4", sysinfo.CPU{Arch: "arm64", Cores: 4, Features: []string{"asimd"}}, statusWarning, "no dot product"},
		{"riscv", sysinfo.CPU{Arch: "riscv64", Cores: 4}, statusWarning, "not a tested architecture"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := checkCPU(tc.cpu)
			if r.Status != tc.status || !strings.Contains(r.Detail, tc.contains) {
				t.Errorf("checkCPU = %+v, want status %s and detail containing %q", r, tc.status, tc.contains)
			}
			if (r.Status == statusOK) != (r.Fix == "") {
				t.Errorf("checkCPU = %+v: a fix is given exactly when it is not ok", r)
			}
		})
	}
}

func TestDoctorSummary(t *testing.T) {
	tests := []struct {
		name     string
		statuses []string
		want     doctorSummary
		code     int
	}{
		{"none", nil, doctorSummary{Status: statusOK}, 0},
		{"all ok", []string{statusOK, statusOK}, doctorSummary{OK: 2, Status: statusOK}, 0},
		{"warnings pass", []string{statusOK, statusWarning}, doctorSummary{OK: 1, Warnings: 1, Status: statusWarning}, 0},
		{"an error fails", []string{statusWarning, statusError, statusOK}, doctorSummary{OK: 1, Warnings: 1, Errors: 1, Status: statusError}, 1},
		{"unknown is an error", []string{"bogus"}, doctorSummary{Errors: 1, Status: statusError}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var checks []checkResult
			for i, s := range tc.statuses {
				checks = append(checks, checkResult{Name: fmt.Sprint(i), Status: s})
			}
			got := summarize(checks)
			if got != tc.want || got.exitCode() != tc.code {
				t.Errorf("summarize(%v) = %+v exit %d, want %+v exit %d", tc.statuses, got, got.exitCode(), tc.want, tc.code)
			}
		})
	}
}

func TestDoctorJSONShape(t *testing.T) {
	checks := []checkResult{okResult("cpu", "amd64"), errResult("broker", "refused", "start it")}
	b, err := json.Marshal(doctorReport{Checks: checks, Summary: summarize(checks)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"checks":[{"name":"cpu","status":"ok","detail":"amd64","fix":""},` +
		`{"name":"broker","status":"error","detail":"refused","fix":"start it"}],` +
		`"summary":{"ok":1,"warnings":0,"errors":1,"status":"error"}}`
	if string(b) != want {
		t.Errorf("JSON:\n%s\nwant\n%s", b, want)
	}
}

func TestDoctorGPU(t *testing.T) {
	nv := sysinfo.GPU{NVIDIA: []string{"/dev/nvidia0", "/dev/nvidiactl"}}
	jetson := sysinfo.GPU{Jetson: "R36 (release), REVISION: 4.3"}
	all := []string{"tensorrt", "cuda", "cpu"}
	tests := []struct {
		name             string
		gpu              sysinfo.GPU
		have, configured []string
		status           string
		contains         string
	}{
		{"no gpu, cpu", sysinfo.GPU{}, []string{"cpu"}, []string{"cpu"}, statusOK, "CPU"},
		{"no gpu, gpu configured", sysinfo.GPU{}, []string{"cpu"}, all, statusWarning, "no NVIDIA GPU"},
		{"render node only", sysinfo.GPU{Render: []string{"/dev/dri/renderD128"}}, []string{"cpu"}, []string{"cpu"}, statusOK, "renderD128"},
		{"nvidia, cpu-only runtime", nv, []string{"cpu"}, all, statusWarning, "no CUDA or TensorRT"},
		{"nvidia, not configured", nv, all, []string{"cpu"}, statusWarning, "uses none"},
		{"nvidia, used", nv, all, all, statusOK, "tensorrt, cuda, cpu"},
		{"jetson, cuda only", jetson, []string{"cuda", "cpu"}, all, statusOK, "cuda, cpu"},
		{"no config", nv, all, nil, statusOK, "runtime has tensorrt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := checkGPU(tc.gpu, tc.have, tc.configured)
			if r.Status != tc.status || !strings.Contains(r.Detail, tc.contains) {
				t.Errorf("checkGPU = %+v, want status %s and detail containing %q", r, tc.status, tc.contains)
			}
		})
	}
}

func TestDoctorOpenCV(t *testing.T) {
	full := []sysinfo.VideoBackend{{Name: "FFMPEG", Enabled: true}, {Name: "GStreamer", Enabled: true}, {Name: "v4l/v4l2", Enabled: true}}
	noGst := []sysinfo.VideoBackend{{Name: "FFMPEG", Enabled: true}, {Name: "GStreamer"}, {Name: "v4l/v4l2", Enabled: true}}
	gstCam := &config.Config{Cameras: []config.Camera{{Name: "csi", Source: "gst:nvarguscamerasrc ! appsink"}}}
	tests := []struct {
		name     string
		backends []sysinfo.VideoBackend
		cfg      *config.Config
		status   string
	}{
		{"all", full, gstCam, statusOK},
		{"no gstreamer, not needed", noGst, nil, statusOK},
		{"no gstreamer, gst camera", noGst, gstCam, statusError},
		{"no ffmpeg", []sysinfo.VideoBackend{{Name: "FFMPEG"}, {Name: "v4l/v4l2", Enabled: true}}, nil, statusWarning},
		{"nothing", nil, nil, statusWarning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := openCVResult("4.6.0", tc.backends, tc.cfg); r.Status != tc.status {
				t.Errorf("openCVResult = %+v, want %s", r, tc.status)
			}
		})
	}
}

// doctorJSON runs `doctor --json` in-process and indexes its checks by name.
func doctorJSON(t *testing.T, args ...string) (doctorReport, map[string]checkResult, error) {
	t.Helper()
	stdout, stderr, err := runCmd(t, newDoctorCmd(), append([]string{"--json"}, args...)...)
	var r doctorReport
	if jerr := json.Unmarshal([]byte(stdout), &r); jerr != nil {
		t.Fatalf("doctor --json: %v\nstdout:\n%s\nstderr:\n%s", jerr, stdout, stderr)
	}
	byName := map[string]checkResult{}
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
			if c.Status != statusOK {
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
		if c := checks[name]; c.Status != statusError || c.Fix == "" {
			t.Errorf("%s: %+v, want an error with a fix", name, c)
		}
	}
	if c := checks["models"]; c.Status != statusOK {
		t.Errorf("models: %+v, want ok", c)
	}
	if _, ok := checks["timing"]; ok {
		t.Error("timing ran with --timing 0")
	}
	if r.Summary.Errors < 2 || r.Summary.Status != statusError {
		t.Errorf("summary %+v", r.Summary)
	}
}

func TestDoctorNoConfig(t *testing.T) {
	t.Setenv("DEEPFAKED_ORT_LIB", testenv.ORTLibrary(t))
	r, checks, err := doctorJSON(t, "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil {
		t.Fatal("doctor without a config: exit status 0")
	}
	if c := checks["config"]; c.Status != statusError || !strings.Contains(c.Fix, "configs/") {
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
	if slices.ContainsFunc(r.Checks, func(c checkResult) bool { return c.Name == "models" }) {
		t.Error("models checked without a config")
	}
}

func TestDoctorStateDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, status string
		skipRoot          bool
	}{
		{"existing", dir, statusOK, false},
		{"not there yet", filepath.Join(dir, "a", "b"), statusOK, false},
		{"under a file", filepath.Join(file, "state"), statusError, false},
		{"read-only", readOnly, statusError, true}, // root writes anyway
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skipRoot && os.Geteuid() == 0 {
				t.Skip("root writes into a read-only directory")
			}
			r := checkStateDir(tc.dir)
			if r.Status != tc.status {
				t.Errorf("checkStateDir(%s) = %+v, want %s", tc.dir, r, tc.status)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("checkStateDir left files or folders behind: %v", ents)
			}
		})
	}
}

// A broker that answers TCP but refuses the session (here: no anonymous
// clients) is an error of its own, not "unreachable", and says the broker's
// answer (MQTT 3.1.1's "not Authorized", not a 3.1 retry's refusal).
func TestDoctorBrokerRefusesSession(t *testing.T) {
	broker := testenv.StartMosquitto(t, "allow_anonymous false\n").URL()
	c, err := config.Load(writeDoctorConfig(t, broker, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	r := checkBroker(t.Context(), c)
	if r.Status != statusError || !strings.Contains(r.Detail, "TCP connects, but no MQTT session in 3s: not Authorized") || !strings.Contains(r.Fix, "mqtt.username") {
		t.Errorf("checkBroker = %+v", r)
	}
}
