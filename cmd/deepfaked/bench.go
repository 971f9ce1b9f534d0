package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"text/tabwriter"

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
			printBench(cmd.OutOrStdout(), report)
			return nil
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

// printBench prints a bench report as tables.
func printBench(w io.Writer, r bench.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.Pipeline) > 0 {
		fmt.Fprintln(tw, "detector\tcameras\tframes\twith faces\tfaces\tfaces/run\tframes/s\tfaces/s\tdecode only\tdecode+detect\tof decode+detect\tlatency p50 ms\tp99 ms\tCPU %\tpeak RSS MB\t")
		for _, p := range r.Pipeline {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f %%\t%.1f\t%.1f\t%.0f\t%.0f\t\n", p.Detector, p.Cameras, p.Frames, p.WithFaces, p.Faces, p.FacesPerRun,
				p.FPS, p.FacesPerS, p.DecodeFPS, p.DetectFPS, 100*p.OfDetectFPS, p.LatencyP50, p.LatencyP99, p.CPUPercent, p.PeakRSSMB)
		}
		fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t")
		tw.Flush()
		fmt.Fprint(tw, "stage ms p50/p99")
		for _, name := range bench.StageNames {
			fmt.Fprintf(tw, "\t%s", name)
		}
		fmt.Fprintln(tw, "\t")
		for _, p := range r.Pipeline {
			fmt.Fprint(tw, p.Detector)
			for _, st := range p.Stages {
				fmt.Fprintf(tw, "\t%.2f/%.2f", st.P50, st.P99)
			}
			fmt.Fprintln(tw, "\t")
		}
		fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t")
		tw.Flush()
	}
	fmt.Fprintln(tw, "backbone\tbatch\tms/batch\tms/face\tfaces/s\tvs first\t")
	for _, m := range r.Model {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.0f\t%.2fx\t\n", filepath.Base(m.Backbone), m.Batch, m.MSPerBatch, m.MSPerFace, m.FacesPerS, m.VsFirst)
	}
	tw.Flush()
}
