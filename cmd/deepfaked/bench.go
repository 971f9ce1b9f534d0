package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/setup"
)

func newBenchCmd() *cobra.Command {
	var (
		path, source string
		detectors    []string
		batches      []int
		iterations   int
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure analysed frames/s, verdict latency and model time per face on this machine",
		Long: `Measure, in one run so the figures compare side by side:
  - the whole pipeline (decode, faces, model, MQTT publish to an embedded broker)
    on --source with fps 0, once per --detector (kind or kind:model.onnx):
    analysed frames/s and verdict latency (capture to publish) p50/p99;
  - backbone+head milliseconds per face at each --batch size.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			var report benchReport
			if source != "" {
				for _, d := range detectors {
					r, err := benchPipeline(cmd.Context(), cfg, source, d)
					if err != nil {
						return fmt.Errorf("bench detector %s: %w", d, err)
					}
					report.Pipeline = append(report.Pipeline, r)
				}
			}
			if report.Model, err = benchModel(cfg, batches, iterations); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			report.print(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (models, providers, threads, faces)")
	cmd.Flags().StringVar(&source, "source", "", "video to run the pipeline on (empty: model timing only)")
	cmd.Flags().StringSliceVar(&detectors, "detector", []string{"haar"}, "face detectors to compare: kind or kind:model.onnx (repeatable)")
	cmd.Flags().IntSliceVar(&batches, "batch", []int{1, 8}, "batch sizes for model timing")
	cmd.Flags().IntVar(&iterations, "iterations", 30, "timed model runs per batch size")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type pipelineResult struct {
	Detector   string  `json:"detector"`
	Frames     int     `json:"frames"`
	WithFaces  int     `json:"frames_with_faces"`
	FPS        float64 `json:"frames_per_s"`
	LatencyP50 float64 `json:"latency_p50_ms"`
	LatencyP99 float64 `json:"latency_p99_ms"`
}

type modelResult struct {
	Batch      int     `json:"batch"`
	MSPerBatch float64 `json:"ms_per_batch"`
	MSPerFace  float64 `json:"ms_per_face"`
}

type benchReport struct {
	Pipeline []pipelineResult `json:"pipeline,omitempty"`
	Model    []modelResult    `json:"model"`
}

func (r benchReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.Pipeline) > 0 {
		fmt.Fprintln(tw, "detector\tframes\twith faces\tframes/s\tlatency p50 ms\tlatency p99 ms\t")
		for _, p := range r.Pipeline {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t\n", p.Detector, p.Frames, p.WithFaces, p.FPS, p.LatencyP50, p.LatencyP99)
		}
		fmt.Fprintln(tw, "\t\t\t\t\t\t")
	}
	fmt.Fprintln(tw, "batch\tms/batch\tms/face\t")
	for _, m := range r.Model {
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t\n", m.Batch, m.MSPerBatch, m.MSPerFace)
	}
	tw.Flush()
}

// benchPipeline runs the daemon itself on one file with an embedded broker on
// a free port, so the figures include decoding, detection, inference and
// publishing; it measures from the verdicts as a subscriber receives them.
func benchPipeline(ctx context.Context, base *config.Config, source, detector string) (pipelineResult, error) {
	cfg := *base
	kind, model, _ := strings.Cut(detector, ":")
	cfg.Faces.Detector, cfg.Faces.Model = kind, model
	cfg.MQTT.Broker, cfg.MQTT.Listen = config.EmbeddedBroker, "127.0.0.1:0"
	cfg.Cameras = []config.Camera{{Name: "bench", Source: source}}
	res := pipelineResult{Detector: kind}
	d, err := daemon.New(ctx, &cfg, newLogger(slog.LevelWarn))
	if err != nil {
		return res, err
	}
	defer d.Close()
	var (
		lat         []float64
		first, last time.Time
		bad         error
	)
	verdicts := cfg.MQTT.TopicPrefix + "/bench/verdict"
	// The watch hands messages over one at a time, and stop returns after the
	// last: these need no lock.
	w, err := watchDaemon(ctx, d.MQTTOptions(), cfg.MQTT.TopicPrefix+"/#", func(topic string, payload []byte) {
		if topic != verdicts {
			return
		}
		var v pipeline.Verdict
		if err := json.Unmarshal(payload, &v); err != nil {
			bad = fmt.Errorf("verdict %s: %w", payload, err)
			return
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		last = now
		lat = append(lat, v.LatencyMS)
		if len(v.Faces) > 0 {
			res.WithFaces++
		}
	})
	if err != nil {
		return res, err
	}
	if err := errors.Join(d.Run(ctx), w.stop(), bad); err != nil {
		return res, err
	}
	res.Frames = len(lat)
	if res.Frames > 1 {
		res.FPS = float64(res.Frames-1) / last.Sub(first).Seconds()
	}
	slices.Sort(lat)
	res.LatencyP50, res.LatencyP99 = percentile(lat, 0.50), percentile(lat, 0.99)
	return res, nil
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// benchModel times backbone+head on random input (the model's cost does not
// depend on pixel values), after one warm-up run per batch size.
func benchModel(cfg *config.Config, batches []int, iterations int) ([]modelResult, error) {
	eng, err := setup.Engine(cfg, newLogger(slog.LevelWarn))
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	clf, err := setup.Classifier(cfg, eng)
	if err != nil {
		return nil, err
	}
	defer clf.Close()
	s := clf.InputSize()
	var out []modelResult
	for _, n := range batches {
		if n < 1 {
			return nil, fmt.Errorf("--batch %d: must be >= 1", n)
		}
		in := make([]float32, n*3*s*s)
		for i := range in {
			in[i] = rand.Float32()*4 - 2
		}
		p := make([]float32, n)
		if _, err := clf.Classify(in, n, p); err != nil {
			return nil, err
		}
		start := time.Now()
		for range iterations {
			if _, err := clf.Classify(in, n, p); err != nil {
				return nil, err
			}
		}
		ms := float64(time.Since(start).Microseconds()) / 1000 / float64(iterations)
		out = append(out, modelResult{Batch: n, MSPerBatch: ms, MSPerFace: ms / float64(n)})
	}
	return out, nil
}
