package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/quantize"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// exitGuardRefused is quantize's status when the accuracy guard keeps the float model.
const exitGuardRefused = 3

func newQuantizeCmd() *cobra.Command {
	var (
		cfgPath, floatPath, calib, calibVideo, crop, out, method, eval, reduceRange, activations string
		calibMax                                                                                 int
		calibFPS, percentile, minAgreement                                                       float64
		perTensor, equalize                                                                      bool
		keepFloat                                                                                []string
	)
	cmd := &cobra.Command{
		Use:   "quantize",
		Short: "Quantise the backbone to INT8 (QDQ), calibrated on face crops or a video, guarded against accuracy loss",
		Long: `Statically quantise model.backbone to INT8 in QDQ form: weights int8,
symmetric, one scale per output channel (every Conv, depthwise included);
activations 8-bit, asymmetric, with ranges calibrated by running the float
model through ONNX Runtime on --calib (a folder of images, preprocessed as
the daemon does; --crop face crops each to its largest face) or on the faces
faces.detector finds in --calib-video. Biases are int32 (input scale x weight
scale). The graph output (the features the head reads) stays float.

Before calibrating, activation channels are equalised (--equalize): each
channel is scaled down where it is made and back up where it is read, so the
float model computes the same but small channels use more of the 8-bit grid.
--method: percentile (default, 99.999% of |x| kept), minmax, or entropy
(TensorRT's KL divergence; clips too much for MnasNet).

Activations are uint8 on x86-64 (ONNX Runtime computes U8S8 there and fuses
every Conv and Add only so) and int8 elsewhere (S8S8); weights use 7 bits on
x86-64 CPUs without VNNI, whose int16 sums can saturate (--reduce-range).

--eval DIR (labelled crops: DIR/real, DIR/fake or DIR/labels.csv) scores the
float and INT8 backbones with model.head side by side (AUC, F1, accuracy, the
share of verdicts that agree at the decision threshold) and writes the INT8
model only when they agree on at least --min-agreement of the images;
otherwise exit status 3 and nothing is written. The float model is never
modified. The output (default <backbone>.int8.onnx) records the method, the
calibration set's sha256, the float model's sha256 and the date; point
model.backbone at it to use it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if (calib == "") == (calibVideo == "") {
				return fmt.Errorf("give one of --calib DIR or --calib-video FILE")
			}
			if crop != workflow.CropNone && crop != workflow.CropFace {
				return fmt.Errorf("--crop %q: want %s or %s", crop, workflow.CropNone, workflow.CropFace)
			}
			if !slices.Contains(quantize.Methods, method) {
				return fmt.Errorf("--method %q: want one of %s", method, strings.Join(quantize.Methods, ", "))
			}
			if !(minAgreement >= 0 && minAgreement <= 1) {
				return fmt.Errorf("--min-agreement %g: want a fraction from 0 to 1", minAgreement)
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			float := cfg.Model.Backbone
			if floatPath != "" {
				float = floatPath
			}
			if out == "" {
				out = strings.TrimSuffix(float, filepath.Ext(float)) + ".int8.onnx"
			}
			if abs(out) == abs(float) {
				return fmt.Errorf("--out %s is the float model: it is never overwritten", out)
			}
			opts := quantize.Options{PerTensorWeights: perTensor}
			var why string
			if opts.ReduceRange, why, err = choose("--reduce-range", reduceRange, quantize.ReduceRangeAdvice); err != nil {
				return err
			}
			bits, per := 8, "channel"
			if opts.ReduceRange {
				bits = 7
			}
			if perTensor {
				per = "tensor"
			}
			fmt.Fprintf(stderr, "weights: int%d per %s (%s)\n", bits, per, why)
			if opts.UnsignedActivations, why, err = choose("--activations", map[string]string{"auto": "auto", "uint8": "yes", "int8": "no"}[activations], quantize.UnsignedActivationsAdvice); err != nil {
				return fmt.Errorf("--activations %q: want auto, int8 or uint8", activations)
			}
			acts := "int8"
			if opts.UnsignedActivations {
				acts = "uint8"
			}
			fmt.Fprintf(stderr, "activations: %s (%s)\n", acts, why)

			f, err := quantize.Load(float)
			if err != nil {
				return err
			}
			eng, err := setup.Engine(cfg, newLogger(slog.LevelWarn))
			if err != nil {
				return err
			}
			defer eng.Close()
			fp32, err := infer.LoadBackbone(eng, float)
			if err != nil {
				return err
			}
			defer fp32.Close()
			pre, err := preprocess.New(setup.PreprocessParams(cfg, fp32.Meta()))
			if err != nil {
				return err
			}
			defer pre.Close()
			var src quantize.Source
			if calib != "" {
				var det quantize.Detector
				if crop == workflow.CropFace {
					d, err := setup.Detector(cfg, eng)
					if err != nil {
						return err
					}
					defer d.Close()
					det = d
				}
				fs, err := quantize.NewFolderSource(calib, calibMax, pre, det)
				if err != nil {
					return err
				}
				defer func() { reportFolder(stderr, fs) }()
				src = fs
			} else {
				det, err := setup.Detector(cfg, eng)
				if err != nil {
					return err
				}
				defer det.Close()
				vs, err := quantize.NewVideoSource(ctx, calibVideo, calibFPS, calibMax, pre, det, newLogger(slog.LevelWarn))
				if err != nil {
					return err
				}
				defer vs.Close()
				src = vs
			}
			calOpts := quantize.CalibrationOptions{Method: method, Percentile: percentile, TempDir: filepath.Dir(out)}
			bar := newProgressBar(stderr, "calibrate")
			pass := 1
			began := time.Now()
			cal, err := quantize.CalibrateModel(ctx, eng, f, src, quantize.RunOptions{CalibrationOptions: calOpts,
				Size: fp32.Meta().InputSize, Batch: 8, Equalize: equalize}, func(p quantize.Progress) {
				if p.Pass != pass {
					bar.done()
					bar = newProgressBar(stderr, "calibrate equalised")
					pass = p.Pass
				}
				bar.update(p.Done, p.Total, -1, "faces")
			})
			bar.done()
			if err != nil {
				return err
			}
			method := cal.Method
			if cal.Equalized {
				method += ", equalised"
			}
			fmt.Fprintf(stderr, "calibrated %d tensors on %d faces (%s) in %.1fs\n", len(cal.Ranges), cal.Samples, method, time.Since(began).Seconds())
			if opts.FloatNodes, opts.Float, err = cal.Float.FloatParts(keepFloat); err != nil {
				return fmt.Errorf("--keep-float: %w", err)
			}
			opts.Metadata = quantize.MetadataFor(quantize.Info{Method: cal.Method, Equalized: cal.Equalized, Options: opts,
				SetSHA256: cal.SetSHA256, Samples: cal.Samples, SourceSHA256: f.SHA256, QuantizedAt: time.Now(),
				Backbone: fp32.Meta(), FloatMetadata: quantize.Metadata(f.Model)})
			data, err := quantize.Quantize(cal.Float, cal.Ranges, opts)
			if err != nil {
				return err
			}
			// The candidate lives beside the output until the guard passes.
			tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".candidate-*.onnx")
			if err != nil {
				return fmt.Errorf("quantize: %w", err)
			}
			defer os.Remove(tmp.Name())
			_, err = tmp.Write(data)
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("quantize: write %s: %w", tmp.Name(), err)
			}
			int8m, err := infer.LoadBackbone(eng, tmp.Name())
			if err != nil {
				return fmt.Errorf("the quantised model does not load: %w", err)
			}
			int8m.Close()
			if eval != "" {
				if err := guard(cmd, cfg, float, tmp.Name(), eval, crop, minAgreement, stdout); err != nil {
					return err
				}
			}
			if err := atomicfile.Write(out, data, 0o644); err != nil {
				return fmt.Errorf("quantize: %w", err)
			}
			fmt.Fprintf(stdout, "wrote %s (%d KiB; float %s unchanged)\n", out, len(data)/1024, float)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfgPath, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (model.backbone, model.head for --eval, runtime, faces)")
	fl.StringVar(&floatPath, "float", "", "float backbone to quantise (default: model.backbone), e.g. when the config already points at the INT8 one")
	fl.StringVar(&calib, "calib", "", "calibration images: a folder (searched recursively) of face crops, or of pictures with --crop face")
	fl.StringVar(&calibVideo, "calib-video", "", "calibration video: the faces faces.detector finds in its frames")
	fl.StringVar(&crop, "crop", workflow.CropNone, "with --calib and --eval: none (images are face crops) or face (crop the largest face, as the daemon does)")
	fl.IntVar(&calibMax, "calib-max", 300, "most calibration faces (spread over the folder; the first found in the video)")
	fl.Float64Var(&calibFPS, "calib-fps", 2, "video frames per second of video to look for faces in")
	fl.StringVar(&out, "out", "", "INT8 model to write (default: the backbone's path with .int8.onnx)")
	fl.StringVar(&method, "method", quantize.MethodPercentile, "calibration: minmax, percentile or entropy (KL divergence, as TensorRT)")
	fl.Float64Var(&percentile, "percentile", 99.999, "with --method percentile: the share of |values| each range keeps, in percent")
	fl.StringVar(&eval, "eval", "", "labelled crops to compare FP32 and INT8 on (with model.head); the INT8 model is written only if the guard passes")
	fl.Float64Var(&minAgreement, "min-agreement", 0.99, "with --eval: the least share of verdicts FP32 and INT8 must agree on")
	fl.StringVar(&reduceRange, "reduce-range", "auto", "7-bit weights: auto (on x86-64 without VNNI), yes or no")
	fl.StringVar(&activations, "activations", "auto", "activation type: auto (uint8 on x86-64, int8 elsewhere), int8 or uint8")
	fl.BoolVar(&equalize, "equalize", true, "equalise activation channels before calibrating (exact in float, cuts INT8 error; keeps the calibration faces in memory for a second pass)")
	fl.StringSliceVar(&keepFloat, "keep-float", nil, "leave in float the nodes whose names start with this (repeatable; e.g. /14/ for the last Conv): more accurate, slower")
	fl.BoolVar(&perTensor, "per-tensor", false, "one weight scale per Conv instead of per channel (for comparison only: it ruins depthwise convolutions)")
	return cmd
}

// choose resolves an auto|yes|no flag, asking advice for auto.
func choose(flag, v string, advice func() (bool, string)) (bool, string, error) {
	switch v {
	case "auto":
		b, why := advice()
		return b, why, nil
	case "yes":
		return true, flag + " yes", nil
	case "no":
		return false, flag + " no", nil
	}
	return false, "", fmt.Errorf("%s %q: want auto, yes or no", flag, v)
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return filepath.Clean(a)
}

func reportFolder(w io.Writer, fs *quantize.FolderSource) {
	if n := len(fs.NoFace); n > 0 {
		fmt.Fprintf(w, "warning: no face found in %d calibration image(s); used them whole: %s\n", n, listSome(fs.NoFace))
	}
	if n := len(fs.Skipped); n > 0 {
		fmt.Fprintf(w, "warning: skipped %d unreadable calibration image(s): %s\n", n, listSome(fs.Skipped))
	}
}

// guard scores the float backbone and the candidate with model.head on a
// labelled folder and refuses the candidate below minAgreement.
func guard(cmd *cobra.Command, cfg *config.Config, float, candidate, dir, crop string, minAgreement float64, stdout io.Writer) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	type side struct {
		name  string
		ev    *workflow.Evaluation
		paths []string
	}
	var sides []side
	for _, c := range []struct{ name, backbone string }{{"FP32", float}, {"INT8", candidate}} {
		c2 := *cfg
		c2.Model.Backbone = c.backbone
		s, err := loadFeatures(ctx, &c2, dataFlags{config: "", data: dir, crop: crop}, stderr)
		if err != nil {
			return fmt.Errorf("--eval %s with the %s backbone: %w", dir, c.name, err)
		}
		head, err := infer.LoadHead(s.eng, cfg.Model.Head, s.backbone.FeatureSize())
		if err != nil {
			s.Close()
			return fmt.Errorf("--eval needs model.head: %w", err)
		}
		ev, err := workflow.Eval(ctx, s.Dataset, head, setup.Threshold(cfg))
		paths := make([]string, len(s.Dataset.Samples))
		for i, x := range s.Dataset.Samples {
			paths[i] = x.Path
		}
		head.Close()
		s.Close()
		if err != nil {
			return err
		}
		sides = append(sides, side{c.name, ev, paths})
	}
	a, b := sides[0].ev, sides[1].ev
	if !slices.Equal(sides[0].paths, sides[1].paths) {
		return fmt.Errorf("--eval %s: the FP32 and INT8 runs read different images (a file changed?)", dir)
	}
	agree, err := quantize.Agreement(a.Scores, b.Scores, a.Metrics.Threshold)
	if err != nil {
		return fmt.Errorf("--eval %s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "accuracy guard on %s (%d images, threshold %.3f):\n", dir, a.Metrics.N, a.Metrics.Threshold)
	fmt.Fprintf(stdout, "  %-5s %8s %8s %8s\n", "", "AUC", "F1", "accuracy")
	for _, s := range sides {
		m := s.ev.Metrics
		fmt.Fprintf(stdout, "  %-5s %8s %8.4f %8.4f\n", s.name, fmtAUC(m.AUC), m.F1, m.Accuracy)
	}
	fmt.Fprintf(stdout, "  AUC change %+.4f, verdicts agree on %.2f%% (minimum %.2f%%)\n", b.Metrics.AUC-a.Metrics.AUC, 100*agree, 100*minAgreement)
	if agree < minAgreement {
		return &exitError{code: exitGuardRefused, err: fmt.Errorf("accuracy guard: verdicts agree on %.2f%% < --min-agreement %.2f%%; nothing written, keep using the float model", 100*agree, 100*minAgreement)}
	}
	return nil
}
