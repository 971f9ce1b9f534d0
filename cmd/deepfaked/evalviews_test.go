package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/train/stability"
)

// TestEvalViews runs `eval --views` through the daemon's classifier (the
// tests' models, then the same with model.tta shift) on hardfake images and
// checks the JSON and the table; and that bad flags are refused.
func TestEvalViews(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	data := trainData(t, 6)
	backbone, head := testenv.Models(t)
	dir := t.TempDir()
	cfg := writeTrainConfig(t, dir, backbone, head, 0)

	stdout, stderr, err := runCmd(t, newEvalCmd(), "--config", cfg, "--data", data, "--views", "all", "--json")
	if err != nil {
		t.Fatalf("eval --views: %v\n%s", err, stderr)
	}
	var res stability.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("eval --views --json: %v\n%s", err, stdout)
	}
	if res.N != 12 || len(res.Views) != len(stability.Views()) {
		t.Fatalf("n %d, %d views: want 12 images and every view", res.N, len(res.Views))
	}
	if res.Views[0].Name != stability.None || res.Views[1].Name != "mirror" {
		t.Errorf("views %s, %s first: want none then mirror", res.Views[0].Name, res.Views[1].Name)
	}
	for _, v := range res.Views[1:] {
		if v.Changed < 0 || v.Changed > 1 || v.MedianDelta < 0 || v.P90Delta < v.MedianDelta {
			t.Errorf("view %s: changed %v, median %v, p90 %v", v.Name, v.Changed, v.MedianDelta, v.P90Delta)
		}
		if v.Metrics.N != 12 {
			t.Errorf("view %s scored %d images", v.Name, v.Metrics.N)
		}
	}
	// A random-weight model's p(fake) moves when the crop is mirrored.
	if res.Views[1].MedianDelta == 0 {
		t.Errorf("mirror moved no p(fake): the views were not applied")
	}

	// The table, with a test-time augmentation: named in the header.
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	shiftCfg := filepath.Join(dir, "shift.yaml")
	if err := os.WriteFile(shiftCfg, []byte(strings.Replace(string(b), "model:\n", "model:\n  tta: shift\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = runCmd(t, newEvalCmd(), "--config", shiftCfg, "--data", data, "--views", "mirror,jpeg50")
	if err != nil {
		t.Fatalf("eval --views mirror,jpeg50: %v\n%s", err, stderr)
	}
	for _, want := range []string{"tta shift", "(12 images)", "mirror", "jpeg50", "changed, confident"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table does not show %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "scale90") {
		t.Errorf("a view that was not asked for is in the table:\n%s", stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--views", "mirror,sideways"}, "sideways"},
		{[]string{"--views", "all", "--crop", "face"}, "--crop"},
		{[]string{"--views", "all", "--roc", filepath.Join(dir, "roc.png")}, "--roc"},
	} {
		_, _, err := runCmd(t, newEvalCmd(), append([]string{"--config", cfg, "--data", data}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("eval %v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}
