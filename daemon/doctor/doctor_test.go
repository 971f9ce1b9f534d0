package doctor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/sysinfo"
)

func TestDoctorCPU(t *testing.T) {
	tests := []struct {
		name     string
		cpu      sysinfo.CPU
		status   string
		contains string
	}{
		{"avx512 vnni", sysinfo.CPU{Arch: "amd64", Cores: 8, Features: []string{"avx2", "avx512f", "avx512_vnni"}}, StatusOK, "AVX-512 VNNI"},
		{"avx vnni", sysinfo.CPU{Arch: "amd64", Cores: 8, Features: []string{"avx2", "avx_vnni"}}, StatusOK, "AVX-VNNI"},
		{"avx2 only", sysinfo.CPU{Arch: "amd64", Cores: 4, Features: []string{"avx2"}}, StatusWarning, "without VNNI"},
		{"avx512 without vnni", sysinfo.CPU{Arch: "amd64", Cores: 4, Features: []string{"avx2", "avx512f"}}, StatusWarning, "without VNNI"},
		{"old x86", sysinfo.CPU{Arch: "amd64", Cores: 2}, StatusWarning, "no AVX2"},
		{"arm64 dotprod", sysinfo.CPU{Arch: "arm64", Cores: 4, Features: []string{"asimd", "asimddp"}}, StatusOK, "asimddp"},
		{"raspberry pi 4", sysinfo.CPU{Arch: "arm64", Cores: 4, Features: []string{"asimd"}}, StatusWarning, "no dot product"},
		{"riscv", sysinfo.CPU{Arch: "riscv64", Cores: 4}, StatusWarning, "not a tested architecture"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := checkCPU(tc.cpu)
			if r.Status != tc.status || !strings.Contains(r.Detail, tc.contains) {
				t.Errorf("checkCPU = %+v, want status %s and detail containing %q", r, tc.status, tc.contains)
			}
			if (r.Status == StatusOK) != (r.Fix == "") {
				t.Errorf("checkCPU = %+v: a fix is given exactly when it is not ok", r)
			}
		})
	}
}

func TestDoctorSummary(t *testing.T) {
	tests := []struct {
		name     string
		statuses []string
		want     Summary
		code     int
	}{
		{"none", nil, Summary{Status: StatusOK}, 0},
		{"all ok", []string{StatusOK, StatusOK}, Summary{OK: 2, Status: StatusOK}, 0},
		{"warnings pass", []string{StatusOK, StatusWarning}, Summary{OK: 1, Warnings: 1, Status: StatusWarning}, 0},
		{"an error fails", []string{StatusWarning, StatusError, StatusOK}, Summary{OK: 1, Warnings: 1, Errors: 1, Status: StatusError}, 1},
		{"unknown is an error", []string{"bogus"}, Summary{Errors: 1, Status: StatusError}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var checks []Result
			for i, s := range tc.statuses {
				checks = append(checks, Result{Name: fmt.Sprint(i), Status: s})
			}
			got := Summarize(checks)
			if got != tc.want || got.ExitCode() != tc.code {
				t.Errorf("Summarize(%v) = %+v exit %d, want %+v exit %d", tc.statuses, got, got.ExitCode(), tc.want, tc.code)
			}
		})
	}
}

func TestDoctorJSONShape(t *testing.T) {
	checks := []Result{okResult("cpu", "amd64"), errResult("broker", "refused", "start it")}
	b, err := json.Marshal(Report{Checks: checks, Summary: Summarize(checks)})
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
		{"no gpu, cpu", sysinfo.GPU{}, []string{"cpu"}, []string{"cpu"}, StatusOK, "CPU"},
		{"no gpu, gpu configured", sysinfo.GPU{}, []string{"cpu"}, all, StatusWarning, "no NVIDIA GPU"},
		{"render node only", sysinfo.GPU{Render: []string{"/dev/dri/renderD128"}}, []string{"cpu"}, []string{"cpu"}, StatusOK, "renderD128"},
		{"nvidia, cpu-only runtime", nv, []string{"cpu"}, all, StatusWarning, "no CUDA or TensorRT"},
		{"nvidia, not configured", nv, all, []string{"cpu"}, StatusWarning, "uses none"},
		{"nvidia, used", nv, all, all, StatusOK, "tensorrt, cuda, cpu"},
		{"jetson, cuda only", jetson, []string{"cuda", "cpu"}, all, StatusOK, "cuda, cpu"},
		{"no config", nv, all, nil, StatusOK, "runtime has tensorrt"},
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
		{"all", full, gstCam, StatusOK},
		{"no gstreamer, not needed", noGst, nil, StatusOK},
		{"no gstreamer, gst camera", noGst, gstCam, StatusError},
		{"no ffmpeg", []sysinfo.VideoBackend{{Name: "FFMPEG"}, {Name: "v4l/v4l2", Enabled: true}}, nil, StatusWarning},
		{"nothing", nil, nil, StatusWarning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := openCVResult("4.6.0", tc.backends, tc.cfg); r.Status != tc.status {
				t.Errorf("openCVResult = %+v, want %s", r, tc.status)
			}
		})
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
		{"existing", dir, StatusOK, false},
		{"not there yet", filepath.Join(dir, "a", "b"), StatusOK, false},
		{"under a file", filepath.Join(file, "state"), StatusError, false},
		{"read-only", readOnly, StatusError, true}, // root writes anyway
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

// registry is a board's GStreamer: the elements it has.
type registry []string

func (r registry) Has(e string) (bool, error) { return slices.Contains(r, e), nil }

func TestDoctorDecoders(t *testing.T) {
	software := registry{"parsebin", "avdec_h264", "rtspsrc", "v4l2src"}
	for _, tc := range []struct {
		name   string
		probe  registry
		status string
		want   []string
	}{
		{"x86 with make deps", software, StatusOK, []string{"hardware: none, auto decodes with FFmpeg", "software decoders (capture.decoder: gstreamer) are here"}},
		{"Jetson", append(registry{"nvv4l2decoder"}, software...), StatusOK, []string{"hardware: nvv4l2decoder (Jetson (NVDEC)), which auto takes"}},
		{"Pi 4 without gst-libav", registry{"v4l2h264dec", "parsebin", "rtspsrc", "v4l2src"}, StatusWarning, []string{"v4l2h264dec (Raspberry Pi 4 (V4L2 M2M))", "lacks avdec_h264 (gstreamer1.0-libav)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkDecoders(tc.probe)
			if r.Status != tc.status {
				t.Errorf("status %s, want %s: %+v", r.Status, tc.status, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Detail, w) {
					t.Errorf("%q lacks %q", r.Detail, w)
				}
			}
		})
	}
}
