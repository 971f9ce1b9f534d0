// Package int8backbone makes the INT8 backbone the daemon runs from a float one
// (`deepfaked quantize`): calibrated on face crops or a video's faces as the
// daemon preprocesses them, quantised to QDQ by infer/quantize, loaded once
// to prove it runs, and kept only if the accuracy guard passes: on labelled
// crops, with model.head, its verdicts agree with the float model's.
package int8backbone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/quantize"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/featureset"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// ErrGuardRefused is Make's error when the INT8 model's verdicts agree with
// the float model's on fewer than Options.MinAgreement of the guard's images.
var ErrGuardRefused = errors.New("accuracy guard refused the INT8 model")

// Options say what to quantise, on what, and how.
type Options struct {
	// Float is the float backbone (model.backbone when empty); Out the INT8
	// model to write (DefaultOut(Float) when empty), never Float itself.
	Float, Out string
	// Calib is a folder of images (face crops, or pictures with Crop
	// dataset.CropFace); CalibVideo a video whose faces faces.detector finds,
	// read at CalibFPS frames a second. One of them.
	Calib, CalibVideo string
	Crop              string // for Calib and Eval
	CalibMax          int    // most calibration faces
	CalibFPS          float64
	Method            string  // quantize.Methods
	Percentile        float64 // with quantize.MethodPercentile
	Equalize          bool    // equalise activation channels first
	// Quantize are the weight and activation choices; its FloatNodes,
	// Float and Metadata are set here.
	Quantize  quantize.Options
	KeepFloat []string // node name prefixes left in float
	// Eval is the guard's labelled folder ("" for no guard); MinAgreement
	// the least share of verdicts FP32 and INT8 must agree on.
	Eval         string
	MinAgreement float64
	// Features loads a labelled folder's features with a config's backbone
	// (featureset.Load, with the caller's progress).
	Features func(ctx context.Context, cfg *config.Config, data, crop string) (*featureset.Set, error)
	Log      *slog.Logger
	// Calibrating reports the calibration's progress.
	Calibrating func(quantize.Progress)
}

// DefaultOut is the INT8 model's default path: the float one's with .int8.onnx.
func DefaultOut(float string) string {
	return strings.TrimSuffix(float, filepath.Ext(float)) + ".int8.onnx"
}

// Result is what Make did.
type Result struct {
	Out, Float         string
	Bytes              int
	Tensors, Samples   int // calibrated tensors and faces
	Method             string
	Equalized          bool
	CalibrationSeconds float64
	NoFace, Unreadable []string // calibration images used whole, and left out
	Guard              *Guard   // nil without Options.Eval
}

// Guard is the accuracy guard's comparison of the two backbones.
type Guard struct {
	Dir          string
	Float, INT8  train.Metrics
	Agreement    float64 // share of verdicts that agree at the float model's threshold
	MinAgreement float64
}

// WriteCalibration reports the calibration: the images it could not use as
// asked, and what it calibrated on.
func (r *Result) WriteCalibration(w io.Writer) {
	if n := len(r.NoFace); n > 0 {
		fmt.Fprintf(w, "warning: no face found in %d calibration image(s); used them whole: %s\n", n, dataset.Some(r.NoFace))
	}
	if n := len(r.Unreadable); n > 0 {
		fmt.Fprintf(w, "warning: skipped %d unreadable calibration image(s): %s\n", n, dataset.Some(r.Unreadable))
	}
	method := r.Method
	if r.Equalized {
		method += ", equalised"
	}
	fmt.Fprintf(w, "calibrated %d tensors on %d faces (%s) in %.1fs\n", r.Tensors, r.Samples, method, r.CalibrationSeconds)
}

// WriteTable prints the accuracy guard's comparison, when there was one.
func (r *Result) WriteTable(w io.Writer) error {
	g := r.Guard
	if g == nil {
		return nil
	}
	fmt.Fprintf(w, "accuracy guard on %s (%d images, threshold %.3f):\n", g.Dir, g.Float.N, g.Float.Threshold)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tAUC\tF1\taccuracy\t")
	fmt.Fprintf(tw, "FP32\t%s\t%.4f\t%.4f\t\n", train.FormatAUC(g.Float.AUC), g.Float.F1, g.Float.Accuracy)
	fmt.Fprintf(tw, "INT8\t%s\t%.4f\t%.4f\t\n", train.FormatAUC(g.INT8.AUC), g.INT8.F1, g.INT8.Accuracy)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "AUC change %+.4f, verdicts agree on %.2f%% (minimum %.2f%%)\n", g.INT8.AUC-g.Float.AUC, 100*g.Agreement, 100*g.MinAgreement)
	return err
}

func (o *Options) check(cfg *config.Config) error {
	if (o.Calib == "") == (o.CalibVideo == "") {
		return errors.New("give one of a calibration folder or a calibration video")
	}
	if err := dataset.CheckCrop(o.Crop); err != nil {
		return err
	}
	if !slices.Contains(quantize.Methods, o.Method) {
		return fmt.Errorf("method %q: want one of %s", o.Method, strings.Join(quantize.Methods, ", "))
	}
	if !(o.MinAgreement >= 0 && o.MinAgreement <= 1) {
		return fmt.Errorf("min agreement %g: want a fraction from 0 to 1", o.MinAgreement)
	}
	if o.Eval != "" && o.Features == nil {
		return errors.New("the accuracy guard needs a way to load features")
	}
	if o.Float == "" {
		o.Float = cfg.Model.Backbone
	}
	if o.Out == "" {
		o.Out = DefaultOut(o.Float)
	}
	if abs(o.Out) == abs(o.Float) {
		return fmt.Errorf("output %s is the float model: it is never overwritten", o.Out)
	}
	return nil
}

// Make quantises the float backbone and writes the INT8 model to o.Out,
// atomically, unless the guard refuses it (ErrGuardRefused, with the
// Result's Guard saying why); the float model is never modified.
func Make(ctx context.Context, cfg *config.Config, o Options) (*Result, error) {
	if err := o.check(cfg); err != nil {
		return nil, err
	}
	r := &Result{Out: o.Out, Float: o.Float}
	f, err := quantize.Load(o.Float)
	if err != nil {
		return nil, err
	}
	eng, err := setup.Engine(cfg, o.Log)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	fp32, err := infer.LoadBackbone(eng, o.Float)
	if err != nil {
		return nil, err
	}
	defer fp32.Close()
	src, closeSrc, err := source(ctx, cfg, eng, fp32.Meta(), o, r)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	cal, err := quantize.CalibrateModel(ctx, eng, f, src, quantize.RunOptions{
		CalibrationOptions: quantize.CalibrationOptions{Method: o.Method, Percentile: o.Percentile, TempDir: filepath.Dir(o.Out)},
		Size:               fp32.Meta().InputSize, Batch: 8, Equalize: o.Equalize}, o.Calibrating)
	closeSrc()
	if err != nil {
		return nil, err
	}
	r.Tensors, r.Samples, r.Method, r.Equalized = len(cal.Ranges), cal.Samples, cal.Method, cal.Equalized
	r.CalibrationSeconds = time.Since(began).Seconds()
	q := o.Quantize
	if q.FloatNodes, q.Float, err = cal.Float.FloatParts(o.KeepFloat); err != nil {
		return nil, fmt.Errorf("keep float: %w", err)
	}
	q.Metadata = quantize.MetadataFor(quantize.Info{Method: cal.Method, Equalized: cal.Equalized, Options: q,
		SetSHA256: cal.SetSHA256, Samples: cal.Samples, SourceSHA256: f.SHA256, QuantizedAt: time.Now(),
		Backbone: fp32.Meta(), FloatMetadata: quantize.Metadata(f.Model)})
	data, err := quantize.Quantize(cal.Float, cal.Ranges, q)
	if err != nil {
		return nil, err
	}
	r.Bytes = len(data)
	candidate, err := writeCandidate(o.Out, data)
	if err != nil {
		return nil, err
	}
	defer os.Remove(candidate)
	int8m, err := infer.LoadBackbone(eng, candidate)
	if err != nil {
		return nil, fmt.Errorf("the quantised model does not load: %w", err)
	}
	int8m.Close()
	if o.Eval != "" {
		if r.Guard, err = guard(ctx, cfg, o, candidate); err != nil {
			return nil, err
		}
		if r.Guard.Agreement < o.MinAgreement {
			return r, fmt.Errorf("%w: verdicts agree on %.2f%% < %.2f%%; nothing written, keep using the float model",
				ErrGuardRefused, 100*r.Guard.Agreement, 100*o.MinAgreement)
		}
	}
	if err := atomicfile.Write(o.Out, data, 0o644); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	return r, nil
}

// source is the calibration's faces: a folder's images (face crops, or the
// largest face of each) or a video's faces.
func source(ctx context.Context, cfg *config.Config, eng *engine.Engine, meta spec.Metadata, o Options, r *Result) (quantize.Source, func(), error) {
	pre, err := preprocess.New(setup.PreprocessParams(cfg, meta))
	if err != nil {
		return nil, nil, err
	}
	var det quantize.Detector
	closers := []func(){func() { pre.Close() }}
	closeAll := func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	if o.CalibVideo != "" || o.Crop == dataset.CropFace {
		d, err := setup.Detector(cfg, eng)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers, det = append(closers, func() { d.Close() }), d
	}
	if o.Calib != "" {
		fs, err := quantize.NewFolderSource(o.Calib, o.CalibMax, pre, det)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		return fs, func() { r.NoFace, r.Unreadable = fs.NoFace, fs.Skipped; closeAll() }, nil
	}
	vs, err := quantize.NewVideoSource(ctx, o.CalibVideo, o.CalibFPS, o.CalibMax, pre, det, o.Log)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, func() { vs.Close() })
	return vs, closeAll, nil
}

// writeCandidate writes the quantised model beside out, where it stays
// until the guard passes.
func writeCandidate(out string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".candidate-*.onnx")
	if err != nil {
		return "", fmt.Errorf("quantize: %w", err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("quantize: write %s: %w", tmp.Name(), err)
	}
	return tmp.Name(), nil
}

// guard scores the float backbone and the candidate with model.head on
// o.Eval, side by side.
func guard(ctx context.Context, cfg *config.Config, o Options, candidate string) (*Guard, error) {
	var evs []*workflow.Evaluation
	var paths [][]string
	for _, c := range []struct{ name, backbone string }{{"FP32", o.Float}, {"INT8", candidate}} {
		c2 := *cfg
		c2.Model.Backbone = c.backbone
		s, err := o.Features(ctx, &c2, o.Eval, o.Crop)
		if err != nil {
			return nil, fmt.Errorf("guard %s with the %s backbone: %w", o.Eval, c.name, err)
		}
		ev, err := evaluate(ctx, s, cfg)
		p := make([]string, len(s.Dataset.Samples))
		for i, x := range s.Dataset.Samples {
			p[i] = x.Path
		}
		s.Close()
		if err != nil {
			return nil, fmt.Errorf("guard %s with the %s backbone: %w", o.Eval, c.name, err)
		}
		evs, paths = append(evs, ev), append(paths, p)
	}
	if !slices.Equal(paths[0], paths[1]) {
		return nil, fmt.Errorf("guard %s: the FP32 and INT8 runs read different images (a file changed?)", o.Eval)
	}
	agree, err := quantize.Agreement(evs[0].Scores, evs[1].Scores, evs[0].Metrics.Threshold)
	if err != nil {
		return nil, fmt.Errorf("guard %s: %w", o.Eval, err)
	}
	return &Guard{Dir: o.Eval, Float: evs[0].Metrics, INT8: evs[1].Metrics, Agreement: agree, MinAgreement: o.MinAgreement}, nil
}

// evaluate scores model.head on s at the decision threshold.
func evaluate(ctx context.Context, s *featureset.Set, cfg *config.Config) (*workflow.Evaluation, error) {
	head, err := s.OpenHead(cfg.Model.Head)
	if err != nil {
		return nil, fmt.Errorf("the guard needs model.head: %w", err)
	}
	defer head.Close()
	return workflow.Eval(ctx, s.Dataset, head, setup.Threshold(cfg))
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return filepath.Clean(a)
}
