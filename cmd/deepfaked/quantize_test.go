package main

import (
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestQuantizeCommand runs deepfaked quantize on `make models`' backbone with
// real face crops: it reports the calibration and the guard's comparison,
// writes the model, leaves the float model alone, and exits 3 with nothing
// written below --min-agreement (the model itself: train/int8backbone).
func TestQuantizeCommand(t *testing.T) {
	testenv.Long(t)
	data := trainData(t, 8)
	dir := t.TempDir()
	backbone, head := testenv.Models(t)
	cfg := writeTrainConfig(t, dir, backbone, head, 0)
	before := testenv.FileSHA256(t, backbone)
	out := filepath.Join(dir, "backbone.int8.onnx")

	stdout, stderr, err := runCmd(t, newQuantizeCmd(), "--config", cfg, "--calib", data, "--out", out, "--eval", data, "--min-agreement", "0")
	if err != nil {
		t.Fatalf("quantize: %v\n%s\n%s", err, stdout, stderr)
	}
	for _, want := range []string{"calibrated", "FP32", "INT8", "verdicts agree on", "wrote " + out} {
		if !strings.Contains(stdout+stderr, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, stdout, stderr)
		}
	}
	if testenv.FileSHA256(t, backbone) != before {
		t.Fatal("the float backbone changed")
	}
	if _, err := os.Stat(out); err != nil { // what it holds: train/int8backbone's TestMake
		t.Fatalf("no INT8 model written: %v", err)
	}

	// The guard: ask for more agreement than there was.
	m := regexp.MustCompile(`verdicts agree on ([0-9.]+)%`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no agreement in:\n%s", stdout)
	}
	agree, _ := strconv.ParseFloat(m[1], 64)
	if agree >= 100 {
		t.Logf("INT8 agreed with FP32 on every image; the refusal is not exercised")
		return
	}
	refused := filepath.Join(dir, "refused.onnx")
	stdout, stderr, err = runCmd(t, newQuantizeCmd(), "--config", cfg, "--calib", data, "--out", refused, "--eval", data,
		"--min-agreement", strconv.FormatFloat(agree/100+0.001, 'f', 4, 64))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitGuardRefused || !strings.Contains(err.Error(), "nothing written") {
		t.Fatalf("quantize below --min-agreement: %v; want exit %d\n%s\n%s", err, exitGuardRefused, stdout, stderr)
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Errorf("%s exists after the guard refused: %v", refused, err)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, ".refused.onnx.candidate-*")); len(ents) > 0 {
		t.Errorf("candidate left behind: %v", ents)
	}
}

func TestQuantizeCommandRefuses(t *testing.T) {
	dir := t.TempDir()
	backbone, head := testenv.Models(t)
	cfg := writeTrainConfig(t, dir, backbone, head, 0)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no calibration", []string{}, "give one of a calibration folder or a calibration video"},
		{"both calibrations", []string{"--calib", dir, "--calib-video", "x.mp4"}, "give one of"},
		{"out is the float model", []string{"--calib", dir, "--out", backbone}, "never overwritten"},
		{"method", []string{"--calib", dir, "--method", "kl"}, `method "kl"`},
		{"crop", []string{"--calib", dir, "--crop", "square"}, `crop mode "square"`},
		{"min agreement", []string{"--calib", dir, "--min-agreement", "99"}, "min agreement 99"},
		{"no images", []string{"--calib", dir, "--out", filepath.Join(dir, "x.onnx")}, "no images"},
		{"keep-float", []string{"--calib", pngDir(t), "--keep-float", "/nope/", "--out", filepath.Join(dir, "x.onnx")}, "no node"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runCmd(t, newQuantizeCmd(), append([]string{"--config", cfg}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want it to say %q", err, c.want)
			}
		})
	}
}

// TestQuantizeCalibVideo calibrates on the faces Haar finds in a real video.
func TestQuantizeCalibVideo(t *testing.T) {
	testenv.Long(t)
	video := testenv.SharedFile(t, "data/videos/real/ffpp_004.mp4")
	dir := t.TempDir()
	backbone, head := testenv.Models(t)
	cfg := writeTrainConfig(t, dir, backbone, head, 0)
	out := filepath.Join(dir, "video.int8.onnx")
	stdout, stderr, err := runCmd(t, newQuantizeCmd(), "--config", cfg, "--calib-video", video, "--calib-max", "12", "--out", out)
	if err != nil {
		t.Fatalf("quantize: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stderr, "on 12 faces") {
		t.Errorf("want 12 calibration faces:\n%s", stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// pngDir is a folder with one grey 64x64 PNG.
func pngDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	img := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	f, err := os.Create(filepath.Join(dir, "grey.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestQuantizeFloatFlag quantises --float when model.backbone is already the
// INT8 model (as in the example configs), and refuses to quantise that INT8
// model again. The calibration folder holds a photo (--crop face crops its
// face, as the daemon would) and a picture with no face (used whole, with a
// warning).
func TestQuantizeFloatFlag(t *testing.T) {
	dir := t.TempDir()
	backbone, head := testenv.Models(t)
	cfg := writeTrainConfig(t, dir, testenv.INT8Backbone(t), head, 0)
	calib := pngDir(t)
	photo, err := os.ReadFile("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")
	if err != nil {
		t.Fatalf("%v (opencv-doc is installed by make deps)", err)
	}
	if err := os.WriteFile(filepath.Join(calib, "messi.jpg"), photo, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "again.int8.onnx")
	_, _, err = runCmd(t, newQuantizeCmd(), "--config", cfg, "--calib", calib, "--out", out)
	if err == nil || !strings.Contains(err.Error(), "is already quantised") {
		t.Fatalf("quantising the INT8 model: %v; want it refused as already quantised", err)
	}
	stdout, stderr, err := runCmd(t, newQuantizeCmd(), "--config", cfg, "--float", backbone, "--calib", calib, "--crop", "face", "--out", out)
	if err != nil {
		t.Fatalf("quantize --float: %v\n%s\n%s", err, stdout, stderr)
	}
	for _, want := range []string{"on 2 faces", "no face found in 1 calibration image(s); used them whole: " + filepath.Join(calib, "grey.png"), "wrote " + out} {
		if !strings.Contains(stdout+stderr, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, stdout, stderr)
		}
	}
}
