package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train/collect"
)

// collectState writes a config whose state_dir holds crops of a real frame
// collected by the daemon's collector: cam1 frames 1 (two faces), 2 and 3, cam2 frame 1.
func collectState(t *testing.T) (cfgPath, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	cfg := fmt.Sprintf(`device_id: t
state_dir: %s
mqtt:
  broker: tcp://127.0.0.1:1883
model:
  backbone: backbone.onnx
  head: head.onnx
cameras:
  - name: cam1
    source: /dev/null
`, stateDir)
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(capturetest.Clip(t))
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	img := gocv.NewMat()
	defer img.Close()
	if !vc.Read(&img) || img.Empty() {
		t.Fatal("no frame in the test clip")
	}
	conf, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	conf.Train.Collect.BandLow, conf.Train.Collect.BandHigh = 0.3, 0.7
	c, err := collect.New(setup.CollectOptions(conf, spec.DefaultMetadata()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ts := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, f := range []struct {
		cam          string
		frame        int64
		face         int
		at           time.Duration // faces of one frame share its capture time
		pFake        float64
		pickedByBand bool
	}{{"cam1", 1, 0, 0, 0.4, true}, {"cam1", 1, 1, 0, 0.55, true}, {"cam1", 2, 0, time.Second, 0.9, false},
		{"cam1", 3, 0, 2 * time.Second, 0.6, true}, {"cam2", 1, 0, 3 * time.Second, 0.31, true}} {
		box := image.Rect(20*f.face, 0, 20*f.face+64, 64)
		roi := img.Region(box)
		got := c.Offer(collect.Face{Camera: f.cam, Frame: f.frame, Index: f.face, TS: ts.Add(f.at),
			Box: box, PFake: f.pFake, Threshold: 0.5, Backbone: "b", Head: "h", Crop: roi})
		roi.Close()
		if got != f.pickedByBand {
			t.Fatalf("offer %+v: chosen %v", f, got)
		}
	}
	return cfgPath, stateDir
}

// runBin runs the built deepfaked; code is its exit status.
func runBin(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(deepfaked(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestLabelCommand(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	cfg, state := collectState(t)

	out, _, code := runBin(t, "label", "--config", cfg, "--list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 || !strings.HasPrefix(lines[0], "CAMERA") {
		t.Fatalf("--list: exit %d\n%s", code, out)
	}
	for i, want := range []string{"cam2  1 0 0.310", "cam1  3 0 0.600", "cam1  1 0 0.400", "cam1  1 1 0.550"} {
		if got := strings.Join(strings.Fields(lines[i+1])[:4], " "); got != strings.Join(strings.Fields(want), " ") {
			t.Errorf("--list line %d: %q, want it to start with %q (newest first)", i+1, lines[i+1], want)
		}
	}
	crop3 := strings.Fields(lines[2])[5]

	out, stderr, code := runBin(t, "label", "--config", cfg, "--camera", "cam1", "--frame", "1", "--label", "fake")
	moved := strings.Fields(out)
	if code != 0 || len(moved) != 2 || !strings.Contains(stderr, "labelled 2 crop(s) fake") {
		t.Fatalf("label cam1 frame 1: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, p := range moved {
		if filepath.Dir(p) != filepath.Join(state, "dataset", "fake") {
			t.Errorf("moved to %s, want <state_dir>/dataset/fake", p)
		}
	}

	other := filepath.Join(t.TempDir(), "other")
	out, _, code = runBin(t, "label", "--config", cfg, "--path", crop3, "--label", "real", "--dataset", other)
	if code != 0 || !strings.HasPrefix(out, filepath.Join(other, "real")+"/cam1-") {
		t.Fatalf("label --path: exit %d\n%s", code, out)
	}
	csv, err := os.ReadFile(filepath.Join(other, dataset.LabelsFile))
	if rows := strings.Count(string(csv), "\n"); err != nil || rows != 2 {
		t.Errorf("%s has %d lines, want header and 1 row", dataset.LabelsFile, rows)
	}

	for _, tc := range []struct {
		args   []string
		errHas string
	}{
		{[]string{"--camera", "cam1", "--frame", "1", "--label", "fake"}, "camera cam1 frame 1: no collected crop"},
		{[]string{"--camera", "cam9", "--frame", "1", "--label", "fake"}, "camera cam9 has no collected crops"},
		{[]string{"--camera", "cam2", "--frame", "1", "--label", "maybe"}, `label "maybe": want real or fake`},
		{[]string{"--camera", "cam2", "--frame", "1"}, "--label real or --label fake is required"},
		{[]string{"--camera", "cam2", "--label", "fake"}, "--camera and --frame go together"},
		{[]string{"--label", "fake"}, "say which crops"},
		{[]string{"--path", crop3, "--camera", "cam2", "--frame", "1", "--label", "fake"}, "either --camera and --frame, or --path"},
		{[]string{"--list", "--label", "fake"}, "--list takes no"},
		{[]string{"--path", "/etc/passwd", "--label", "fake"}, "/etc/passwd is not a collected crop"},
	} {
		_, stderr, code := runBin(t, append([]string{"label", "--config", cfg}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.errHas) {
			t.Errorf("label %v: exit %d, stderr %q; want an error with %q", tc.args, code, stderr, tc.errHas)
		}
	}

	out, _, _ = runBin(t, "label", "--config", cfg, "--list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "cam2") {
		t.Errorf("--list after labelling:\n%s\nwant only cam2's crop", out)
	}

	// Training reads the data folder labelling made (one class so far).
	if _, err := dataset.Load(filepath.Join(state, "dataset")); err == nil || !strings.Contains(err.Error(), "2 fake images but no real ones") {
		t.Errorf("data folder after labelling: %v", err)
	}
}
