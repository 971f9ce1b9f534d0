package main

import (
	"encoding/json"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/bench"
	"github.com/deepfaked/deepfaked/daemon/config"
)

func newBenchCmd() *cobra.Command {
	var (
		path, source string
		detectors    []string
		batches      []int
		backbones    []string
		iterations   int
		asJSON       bool
		cameras      int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure analysed frames/s, verdict latency and model time per face on this machine",
		Long: `Measure, in one run so the figures compare side by side:
  - the whole pipeline (decode, faces, model, MQTT publish to an embedded broker)
    on --source with fps 0, once per --detector (kind or kind:model.onnx):
    analysed frames/s and faces/s, verdict latency (capture to publish)
    p50/p99, each stage's p50/p99 (decode, detect, preprocess, queue: waiting
    for the inference goroutine, batch_wait: for other cameras' faces
    (model.batch_wait), backbone, head, publish), the process's CPU % and
    peak RSS;
  - the bounds the pipeline is measured against, on the same source: frames/s
    of decoding alone, and of decoding plus face detection alone (one
    goroutine, as a camera's);
  - backbone+head milliseconds per face and faces/s at each --batch size, for
    each --backbone (FP32 and INT8 side by side: they take turns run by run).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			report, err := bench.Run(cmd.Context(), cfg, bench.Options{Source: source, Detectors: detectors, Cameras: cameras,
				Backbones: backbones, Batches: batches, Iterations: iterations, Log: newLogger(slog.LevelWarn)})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			return report.WriteTable(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (models, providers, threads, faces)")
	cmd.Flags().StringVar(&source, "source", "", "video to run the pipeline on (empty: model timing only)")
	cmd.Flags().IntVar(&cameras, "cameras", 1, "cameras reading --source at once, sharing model runs (model.batch_wait)")
	cmd.Flags().StringSliceVar(&detectors, "detector", []string{"haar"}, "face detectors to compare: kind or kind:model.onnx (repeatable)")
	cmd.Flags().IntSliceVar(&batches, "batch", []int{1, 8}, "batch sizes for model timing")
	cmd.Flags().StringSliceVar(&backbones, "backbone", nil, "backbones to time side by side with model.head, e.g. the FP32 and the INT8 one (repeatable; default model.backbone)")
	cmd.Flags().IntVar(&iterations, "iterations", 30, "timed model runs per batch size")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
