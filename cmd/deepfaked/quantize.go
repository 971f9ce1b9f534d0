package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer/quantize"
	"github.com/deepfaked/deepfaked/internal/progress"
	"github.com/deepfaked/deepfaked/train/featureset"
	"github.com/deepfaked/deepfaked/train/int8backbone"
)

// exitGuardRefused is quantize's status when the accuracy guard keeps the float model.
const exitGuardRefused = 3

func newQuantizeCmd() *cobra.Command {
	var (
		cfgPath, reduceRange, activations string
		o                                 int8backbone.Options
		bar                               *progress.Bar
		pass                              = 1
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
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			o.Calibrating = func(p quantize.Progress) {
				if p.Pass != pass {
					bar.Done()
					bar = progress.New(stderr, "calibrate equalised")
					pass = p.Pass
				}
				bar.Update(p.Done, p.Total, -1, "faces")
			}
			var why string
			if o.Quantize.ReduceRange, why, err = choose("--reduce-range", reduceRange, quantize.ReduceRangeAdvice); err != nil {
				return err
			}
			bits, per := 8, "channel"
			if o.Quantize.ReduceRange {
				bits = 7
			}
			if o.Quantize.PerTensorWeights {
				per = "tensor"
			}
			fmt.Fprintf(stderr, "weights: int%d per %s (%s)\n", bits, per, why)
			if o.Quantize.UnsignedActivations, why, err = choose("--activations", map[string]string{"auto": "auto", "uint8": "yes", "int8": "no"}[activations], quantize.UnsignedActivationsAdvice); err != nil {
				return fmt.Errorf("--activations %q: want auto, int8 or uint8", activations)
			}
			acts := "int8"
			if o.Quantize.UnsignedActivations {
				acts = "uint8"
			}
			fmt.Fprintf(stderr, "activations: %s (%s)\n", acts, why)
			o.Log = newLogger(slog.LevelWarn)
			o.Features = func(ctx context.Context, cfg *config.Config, data, crop string) (*featureset.Set, error) {
				return loadFeatures(ctx, cfg, dataFlags{data: data, crop: crop}, stderr)
			}
			bar = progress.New(stderr, "calibrate")
			r, err := int8backbone.Make(cmd.Context(), cfg, o)
			bar.Done()
			if r != nil {
				r.WriteCalibration(stderr)
				if err := r.WriteTable(stdout); err != nil {
					return err
				}
			}
			if errors.Is(err, int8backbone.ErrGuardRefused) {
				return &exitError{code: exitGuardRefused, err: err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s (%d KiB; float %s unchanged)\n", r.Out, r.Bytes/1024, r.Float)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfgPath, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (model.backbone, model.head for --eval, runtime, faces)")
	fl.StringVar(&o.Float, "float", "", "float backbone to quantise (default: model.backbone), e.g. when the config already points at the INT8 one")
	fl.StringVar(&o.Calib, "calib", "", "calibration images: a folder (searched recursively) of face crops, or of pictures with --crop face")
	fl.StringVar(&o.CalibVideo, "calib-video", "", "calibration video: the faces faces.detector finds in its frames")
	fl.StringVar(&o.Crop, "crop", dataset.CropNone, "with --calib and --eval: none (images are face crops) or face (crop the largest face, as the daemon does)")
	fl.IntVar(&o.CalibMax, "calib-max", 300, "most calibration faces (spread over the folder; the first found in the video)")
	fl.Float64Var(&o.CalibFPS, "calib-fps", 2, "video frames per second of video to look for faces in")
	fl.StringVar(&o.Out, "out", "", "INT8 model to write (default: the backbone's path with .int8.onnx)")
	fl.StringVar(&o.Method, "method", quantize.MethodPercentile, "calibration: minmax, percentile or entropy (KL divergence, as TensorRT)")
	fl.Float64Var(&o.Percentile, "percentile", 99.999, "with --method percentile: the share of |values| each range keeps, in percent")
	fl.StringVar(&o.Eval, "eval", "", "labelled crops to compare FP32 and INT8 on (with model.head); the INT8 model is written only if the guard passes")
	fl.Float64Var(&o.MinAgreement, "min-agreement", 0.99, "with --eval: the least share of verdicts FP32 and INT8 must agree on")
	fl.StringVar(&reduceRange, "reduce-range", "auto", "7-bit weights: auto (on x86-64 without VNNI), yes or no")
	fl.StringVar(&activations, "activations", "auto", "activation type: auto (uint8 on x86-64, int8 elsewhere), int8 or uint8")
	fl.BoolVar(&o.Equalize, "equalize", true, "equalise activation channels before calibrating (exact in float, cuts INT8 error; keeps the calibration faces in memory for a second pass)")
	fl.StringSliceVar(&o.KeepFloat, "keep-float", nil, "leave in float the nodes whose names start with this (repeatable; e.g. /14/ for the last Conv): more accurate, slower")
	fl.BoolVar(&o.Quantize.PerTensorWeights, "per-tensor", false, "one weight scale per Conv instead of per channel (for comparison only: it ruins depthwise convolutions)")
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
