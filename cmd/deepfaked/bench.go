package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/livestat"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/setup"
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
			var report benchReport
			if cameras < 1 {
				return fmt.Errorf("--cameras %d: must be >= 1", cameras)
			}
			if source != "" {
				decode, err := benchSource(cmd.Context(), cfg, source, "")
				if err != nil {
					return fmt.Errorf("bench decoding alone: %w", err)
				}
				for _, d := range detectors {
					r, err := benchPipeline(cmd.Context(), cfg, source, d, cameras, decode)
					if err != nil {
						return fmt.Errorf("bench detector %s: %w", d, err)
					}
					report.Pipeline = append(report.Pipeline, r)
				}
			}
			if report.Model, err = benchModel(cfg, backbones, batches, iterations); err != nil {
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
	cmd.Flags().IntVar(&cameras, "cameras", 1, "cameras reading --source at once, sharing model runs (model.batch_wait)")
	cmd.Flags().StringSliceVar(&detectors, "detector", []string{"haar"}, "face detectors to compare: kind or kind:model.onnx (repeatable)")
	cmd.Flags().IntSliceVar(&batches, "batch", []int{1, 8}, "batch sizes for model timing")
	cmd.Flags().StringSliceVar(&backbones, "backbone", nil, "backbones to time side by side with model.head, e.g. the FP32 and the INT8 one (repeatable; default model.backbone)")
	cmd.Flags().IntVar(&iterations, "iterations", 30, "timed model runs per batch size")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type pipelineResult struct {
	Detector  string `json:"detector"`
	Frames    int    `json:"frames"`
	WithFaces int    `json:"frames_with_faces"`
	Faces     int    `json:"faces"`
	Cameras   int    `json:"cameras"`
	// FacesPerRun is the mean number of faces a model run took (frames from
	// all cameras share runs).
	FacesPerRun float64 `json:"faces_per_model_run"`
	FPS         float64 `json:"frames_per_s"`
	FacesPerS   float64 `json:"faces_per_s"`
	// The bounds: frames/s of decoding alone and of decoding plus detection
	// alone (one stream), and the pipeline's frames/s (all cameras) as a
	// fraction of the latter.
	DecodeFPS   float64       `json:"decode_only_frames_per_s"`
	DetectFPS   float64       `json:"decode_detect_only_frames_per_s"`
	OfDetectFPS float64       `json:"fraction_of_decode_detect"`
	LatencyP50  float64       `json:"latency_p50_ms"`
	LatencyP99  float64       `json:"latency_p99_ms"`
	CPUPercent  float64       `json:"cpu_percent"` // 100 is one core busy
	PeakRSSMB   float64       `json:"peak_rss_mb"`
	Stages      []stageResult `json:"stages"`
}

type stageResult struct {
	Stage string  `json:"stage"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

// stageNames are the pipeline's stages in order; stageTimes.Observe measures them.
var stageNames = [...]string{"decode", "detect", "preprocess", "queue", "batch_wait", "backbone", "head", "publish"}

// stageTimes keeps each stage's durations in ms, from the daemon's pipeline
// (daemon.ObserveStages). Backbone and head count frames with faces only.
type stageTimes struct {
	ms   [len(stageNames)][]float64
	runs float64 // model runs: each frame's share of the run its faces went through
}

func (s *stageTimes) Observe(st *livestat.Stages) {
	if st.Faces > 0 {
		s.runs += float64(st.Faces) / float64(st.Batch)
	}
	d := [...]time.Duration{st.Read.Sub(st.Next), st.Detected.Sub(st.Read), st.Preprocessed.Sub(st.Detected),
		st.Dequeued.Sub(st.Preprocessed), st.Classified.Sub(st.Dequeued) - st.Backbone - st.Head,
		st.Backbone, st.Head, st.Published.Sub(st.Classified)}
	for i, v := range d {
		if st.Faces == 0 && (stageNames[i] == "backbone" || stageNames[i] == "head") {
			continue
		}
		s.ms[i] = append(s.ms[i], v.Seconds()*1e3)
	}
}

func (s *stageTimes) results() []stageResult {
	out := make([]stageResult, len(stageNames))
	for i, name := range stageNames {
		slices.Sort(s.ms[i])
		out[i] = stageResult{Stage: name, P50: percentile(s.ms[i], 0.50), P99: percentile(s.ms[i], 0.99)}
	}
	return out
}

type modelResult struct {
	Backbone   string  `json:"backbone"`
	Batch      int     `json:"batch"`
	MSPerBatch float64 `json:"ms_per_batch"`
	MSPerFace  float64 `json:"ms_per_face"`
	FacesPerS  float64 `json:"faces_per_s"`
	// VsFirst is faces/s over the first backbone's at this batch size.
	VsFirst float64 `json:"faces_per_s_vs_first"`
}

type benchReport struct {
	Pipeline []pipelineResult `json:"pipeline,omitempty"`
	Model    []modelResult    `json:"model"`
}

func (r benchReport) print(w io.Writer) {
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
		for _, name := range stageNames {
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

// benchPipeline runs the daemon itself on one file with an embedded broker on
// a free port, so the figures include decoding, detection, inference and
// publishing; it measures from the verdicts as a subscriber receives them,
// and takes the stage times from the pipeline (daemon.ObserveStages). Then
// it measures decoding plus detection alone on the same file.
func benchPipeline(ctx context.Context, base *config.Config, source, detector string, cameras int, decodeFPS float64) (pipelineResult, error) {
	cfg := *base
	kind, model, _ := strings.Cut(detector, ":")
	cfg.Faces.Detector, cfg.Faces.Model = kind, model
	cfg.MQTT.Broker, cfg.MQTT.Listen = config.EmbeddedBroker, "127.0.0.1:0"
	cfg.Cameras = nil
	for i := range cameras {
		cfg.Cameras = append(cfg.Cameras, config.Camera{Name: fmt.Sprintf("bench%d", i+1), Source: source})
	}
	res := pipelineResult{Detector: kind, Cameras: cameras, DecodeFPS: decodeFPS}
	// An outbox of its own: not the installed daemon's (which holds it), nor
	// one an interrupted bench left verdicts in.
	box, err := os.MkdirTemp("", "deepfaked-bench-outbox")
	if err != nil {
		return res, fmt.Errorf("bench outbox: %w", err)
	}
	defer os.RemoveAll(box)
	cfg.MQTT.Outbox.Dir = box
	resetPeakRSS()
	d, err := daemon.New(ctx, &cfg, newLogger(slog.LevelWarn))
	if err != nil {
		return res, err
	}
	defer d.Close()
	var stages stageTimes
	d.ObserveStages(&stages)
	var (
		lat         []float64
		first, last time.Time
		bad         error
	)
	// The watch hands messages over one at a time, and stop returns after the
	// last: these need no lock.
	w, err := watchDaemon(ctx, d.MQTTOptions(), cfg.MQTT.TopicPrefix+"/#", func(topic string, payload []byte) {
		if _, kind, _ := (contract.Topics{Prefix: cfg.MQTT.TopicPrefix}).CameraOf(topic); kind != contract.KindVerdict {
			return
		}
		var v contract.Verdict
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
			res.Faces += len(v.Faces)
		}
	})
	if err != nil {
		return res, err
	}
	cpu0, start := cpuTime(), time.Now()
	if err := errors.Join(d.Run(ctx), w.stop(), bad); err != nil {
		return res, err
	}
	res.CPUPercent = 100 * (cpuTime() - cpu0).Seconds() / time.Since(start).Seconds()
	res.PeakRSSMB = peakRSSMB()
	// After the daemon, so that its peak RSS is not raised by what this pass
	// leaves in the heap.
	if res.DetectFPS, err = benchSource(ctx, &cfg, source, kind); err != nil {
		return res, fmt.Errorf("decoding and detection alone: %w", err)
	}
	res.Frames = len(lat)
	if res.Frames > 1 {
		res.FPS = float64(res.Frames-1) / last.Sub(first).Seconds()
		res.FacesPerS = res.FPS * float64(res.Faces) / float64(res.Frames)
	}
	if res.DetectFPS > 0 {
		res.OfDetectFPS = res.FPS / res.DetectFPS
	}
	slices.Sort(lat)
	res.LatencyP50, res.LatencyP99 = percentile(lat, 0.50), percentile(lat, 0.99)
	res.Stages = stages.results()
	if stages.runs > 0 {
		res.FacesPerRun = float64(res.Faces) / stages.runs
	}
	return res, nil
}

// benchSource is the frames/s of reading source at fps 0 on one goroutine, as
// a pipeline camera does, and detecting faces in each frame with detector
// (cfg's faces: options) unless it is empty.
func benchSource(ctx context.Context, cfg *config.Config, source, detector string) (float64, error) {
	log := newLogger(slog.LevelWarn)
	var det face.Detector
	if detector != "" {
		eng, err := setup.Engine(cfg, log)
		if err != nil {
			return 0, err
		}
		defer eng.Close()
		if det, err = setup.Detector(cfg, eng); err != nil {
			return 0, err
		}
		defer det.Close()
	}
	cam, err := capture.Open(ctx, setup.CameraOptions(config.Camera{Name: "bench", Source: source}), log)
	if err != nil {
		return 0, err
	}
	defer cam.Close()
	var boxes []face.Box
	frames, start := 0, time.Now()
	for {
		f, err := cam.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if det != nil {
			boxes, err = det.Detect(f.Mat, boxes[:0])
		}
		cam.Release(f)
		if err != nil {
			return 0, err
		}
		frames++
	}
	if frames == 0 {
		return 0, fmt.Errorf("%s has no frames", source)
	}
	return float64(frames) / time.Since(start).Seconds(), nil
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS starts the process's peak RSS (VmHWM) over from its current
// RSS, so that each detector's figure is its own (Linux 4.0 and later).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMB is the process's peak RSS since resetPeakRSS, in MiB: VmHWM, or
// getrusage's lifetime peak where /proc cannot be read.
func peakRSSMB() float64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				var kb float64
				if _, err := fmt.Sscanf(rest, "%f kB", &kb); err == nil {
					return kb / 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// benchModel times backbone+head on random input (the model's cost does not
// depend on pixel values), after one warm-up run per batch size, for each
// backbone (model.backbone when none is given; FP32 and INT8, say) with
// model.head. The backbones take turns run by run, so that a noisy machine
// slows them alike and the ratio to the first holds.
func benchModel(cfg *config.Config, backbones []string, batches []int, iterations int) ([]modelResult, error) {
	if len(backbones) == 0 {
		backbones = []string{cfg.Model.Backbone}
	}
	eng, err := setup.Engine(cfg, newLogger(slog.LevelWarn))
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	clfs := make([]*infer.Classifier, len(backbones))
	for i, b := range backbones {
		c := *cfg
		c.Model.Backbone = b
		if clfs[i], err = setup.Classifier(&c, eng); err != nil {
			return nil, fmt.Errorf("--backbone %s: %w", b, err)
		}
		defer clfs[i].Close()
	}
	var out []modelResult
	for _, n := range batches {
		if n < 1 {
			return nil, fmt.Errorf("--batch %d: must be >= 1", n)
		}
		ins := make([][]float32, len(clfs))
		p := make([]float32, n)
		for i, clf := range clfs {
			s := clf.InputSize()
			ins[i] = make([]float32, n*3*s*s)
			for k := range ins[i] {
				ins[i][k] = rand.Float32()*4 - 2
			}
			if _, err := clf.Classify(ins[i], n, p); err != nil {
				return nil, err
			}
		}
		spent := make([]time.Duration, len(clfs))
		for range iterations {
			for i, clf := range clfs {
				start := time.Now()
				if _, err := clf.Classify(ins[i], n, p); err != nil {
					return nil, err
				}
				spent[i] += time.Since(start)
			}
		}
		for i, b := range backbones {
			ms := spent[i].Seconds() * 1e3 / float64(iterations)
			out = append(out, modelResult{Backbone: b, Batch: n, MSPerBatch: ms, MSPerFace: ms / float64(n),
				FacesPerS: 1e3 * float64(n) / ms, VsFirst: spent[0].Seconds() / spent[i].Seconds()})
		}
	}
	return out, nil
}
