package int8backbone

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/quantize"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/featureset"
)

// TestMake quantises the tests' float backbone on a folder of crops with
// the guard on: the INT8 model is written with its calibration recorded and
// loads, the float model is untouched; asked for more agreement than there
// was, the guard refuses and nothing is written, no candidate left behind.
func TestMake(t *testing.T) {
	testenv.Long(t)
	backbone, head := testenv.Models(t)
	dir := t.TempDir()
	cfg := &config.Config{StateDir: filepath.Join(dir, "state"), Model: config.Model{Backbone: backbone, Head: head, Runtime: testenv.ORTLibrary(t)}}
	data := testenv.NoiseCrops(t, 6, 64, 3)
	before := testenv.FileSHA256(t, backbone)
	opts := func(out string, minAgreement float64) Options {
		return Options{Out: out, Calib: data, Crop: dataset.CropNone, CalibMax: 100, Method: quantize.MethodPercentile, Percentile: 99.999,
			Equalize: true, Eval: data, MinAgreement: minAgreement,
			Features: func(ctx context.Context, cfg *config.Config, data, crop string) (*featureset.Set, error) {
				return featureset.Load(ctx, cfg, featureset.Options{Data: data, Crop: crop, Cache: filepath.Join(dir, "cache")})
			}}
	}
	out := filepath.Join(dir, "backbone.int8.onnx")
	var passes []int
	o := opts(out, 0)
	o.Calibrating = func(p quantize.Progress) {
		if len(passes) == 0 || passes[len(passes)-1] != p.Pass {
			passes = append(passes, p.Pass)
		}
	}
	r, err := Make(context.Background(), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Samples != 12 || r.Tensors == 0 || !r.Equalized || r.Guard == nil || r.Guard.Float.N != 12 || len(passes) != 2 {
		t.Errorf("result %+v, guard %+v, calibration passes %v", r, r.Guard, passes)
	}
	if testenv.FileSHA256(t, backbone) != before {
		t.Fatal("the float backbone changed")
	}
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	b, err := infer.LoadBackbone(eng, out)
	if err != nil {
		t.Fatalf("the INT8 backbone does not load: %v", err)
	}
	meta := b.Meta()
	b.Close()
	if meta.Extra[spec.KeyCalibrationSamples] != "12" || meta.Precision() != spec.PrecisionINT8 {
		t.Errorf("metadata %+v", meta)
	}

	t.Logf("INT8 and FP32 verdicts agree on %.1f%% of the images", 100*r.Guard.Agreement)
	if r.Guard.Agreement < 1 {
		refused := filepath.Join(dir, "refused.onnx")
		r2, err := Make(context.Background(), cfg, opts(refused, r.Guard.Agreement+0.001))
		if !errors.Is(err, ErrGuardRefused) || r2 == nil || r2.Guard == nil || !strings.Contains(err.Error(), "nothing written") {
			t.Fatalf("Make above the agreement: %v, %+v; want ErrGuardRefused with the guard's figures", err, r2)
		}
		if _, err := os.Stat(refused); !os.IsNotExist(err) {
			t.Errorf("%s exists after the guard refused: %v", refused, err)
		}
	}
	// The refusal above, or an unrunnable calibration below, leaves no candidate.
	if m, _ := filepath.Glob(filepath.Join(dir, ".*.candidate-*")); len(m) > 0 {
		t.Errorf("candidates left behind: %v", m)
	}

	for _, tc := range []struct {
		name string
		o    func(o *Options)
		want string
	}{
		{"float as output", func(o *Options) { o.Out = backbone }, "never overwritten"},
		{"two calibrations", func(o *Options) { o.CalibVideo = "x.mp4" }, "one of"},
		{"method", func(o *Options) { o.Method = "kl" }, `method "kl"`},
		{"crop", func(o *Options) { o.Crop = "square" }, `crop mode "square"`},
		{"guard without features", func(o *Options) { o.Features = nil }, "load features"},
		{"no such node", func(o *Options) { o.KeepFloat = []string{"/nope/"} }, "no node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(filepath.Join(dir, "x.onnx"), 0)
			tc.o(&o)
			if _, err := Make(context.Background(), cfg, o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Make: %v; want an error with %q", err, tc.want)
			}
		})
	}
}

// TestReport prints what quantize shows its user: the images calibration
// could not use as asked, and the guard's side-by-side table.
func TestReport(t *testing.T) {
	r := &Result{Tensors: 80, Samples: 12, Method: quantize.MethodPercentile, Equalized: true, CalibrationSeconds: 1.25,
		NoFace: []string{"a.png"}, Unreadable: []string{"b.txt", "c.png"}}
	var log strings.Builder
	r.WriteCalibration(&log)
	for _, want := range []string{"no face found in 1 calibration image(s); used them whole: a.png",
		"skipped 2 unreadable calibration image(s): b.txt, c.png", "calibrated 80 tensors on 12 faces (percentile, equalised) in 1.2s"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("calibration report lacks %q:\n%s", want, log.String())
		}
	}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil || table.Len() != 0 {
		t.Fatalf("without a guard: %v, %q; want nothing", err, table.String())
	}
	r.Guard = &Guard{Dir: "eval", Float: train.Metrics{N: 200, AUC: 0.81, F1: 0.7, Accuracy: 0.75, Threshold: 0.4},
		INT8: train.Metrics{N: 200, AUC: 0.8, F1: 0.69, Accuracy: 0.74}, Agreement: 0.985, MinAgreement: 0.99}
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accuracy guard on eval (200 images, threshold 0.400)", "FP32  0.8100", "INT8  0.8000",
		"AUC change -0.0100, verdicts agree on 98.50% (minimum 99.00%)"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("guard table lacks %q:\n%s", want, table.String())
		}
	}
}
