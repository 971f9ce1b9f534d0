// Package bench is `deepfaked bench` without the command line: the whole
// live pipeline (the daemon itself on a video, with an embedded broker)
// measured as a subscriber sees it, the bounds it is measured against
// (decoding alone, decoding and detection alone), and the model's time per
// face at each batch size, several backbones side by side.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/livestat"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/setup"
)

// PipelineResult is the whole pipeline on one source with one detector.
type PipelineResult struct {
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
	Stages      []StageResult `json:"stages"`
}

// StageResult is one stage's latency.
type StageResult struct {
	Stage string  `json:"stage"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

// StageNames are the pipeline's stages in order; stageTimes.Observe measures them.
var StageNames = [...]string{"decode", "detect", "preprocess", "queue", "batch_wait", "backbone", "head", "publish"}

// stageTimes keeps each stage's durations in ms, from the daemon's pipeline
// (daemon.ObserveStages). Backbone and head count frames with faces only.
type stageTimes struct {
	ms   [len(StageNames)][]float64
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
		if st.Faces == 0 && (StageNames[i] == "backbone" || StageNames[i] == "head") {
			continue
		}
		s.ms[i] = append(s.ms[i], v.Seconds()*1e3)
	}
}

func (s *stageTimes) results() []StageResult {
	out := make([]StageResult, len(StageNames))
	for i, name := range StageNames {
		slices.Sort(s.ms[i])
		out[i] = StageResult{Stage: name, P50: percentile(s.ms[i], 0.50), P99: percentile(s.ms[i], 0.99)}
	}
	return out
}

// ModelResult is one backbone (with model.head) at one batch size.
type ModelResult struct {
	Backbone   string  `json:"backbone"`
	Batch      int     `json:"batch"`
	MSPerBatch float64 `json:"ms_per_batch"`
	MSPerFace  float64 `json:"ms_per_face"`
	FacesPerS  float64 `json:"faces_per_s"`
	// VsFirst is faces/s over the first backbone's at this batch size.
	VsFirst float64 `json:"faces_per_s_vs_first"`
}

// Report is what `deepfaked bench` measured.
type Report struct {
	Pipeline []PipelineResult `json:"pipeline,omitempty"`
	Model    []ModelResult    `json:"model"`
}

// Options are what `deepfaked bench` measures besides the config.
type Options struct {
	// Source is the video the pipeline runs on ("": the model's timing
	// only), once per detector (kind or kind:model.onnx), read by Cameras
	// cameras at once.
	Source    string
	Detectors []string
	Cameras   int
	// Backbones are timed side by side with model.head (model.backbone when
	// empty), Iterations runs at each of Batches.
	Backbones  []string
	Batches    []int
	Iterations int
	Log        *slog.Logger
}

// Run measures, in one run so the figures compare side by side: decoding
// alone, the pipeline once per detector (Pipeline), and the model (Model).
func Run(ctx context.Context, cfg *config.Config, o Options) (Report, error) {
	var r Report
	if o.Cameras < 1 {
		return r, fmt.Errorf("cameras %d: must be >= 1", o.Cameras)
	}
	if o.Source != "" {
		decode, err := Source(ctx, cfg, o.Source, "", o.Log)
		if err != nil {
			return r, fmt.Errorf("bench decoding alone: %w", err)
		}
		for _, d := range o.Detectors {
			p, err := Pipeline(ctx, cfg, o.Source, d, o.Cameras, decode, o.Log)
			if err != nil {
				return r, fmt.Errorf("bench detector %s: %w", d, err)
			}
			r.Pipeline = append(r.Pipeline, p)
		}
	}
	var err error
	r.Model, err = Model(cfg, o.Backbones, o.Batches, o.Iterations, o.Log)
	return r, err
}

// Pipeline runs the daemon itself on one file with an embedded broker on
// a free port, so the figures include decoding, detection, inference and
// publishing; it measures from the verdicts as a subscriber receives them,
// and takes the stage times from the pipeline (daemon.ObserveStages). Then
// it measures decoding plus detection alone on the same file.
func Pipeline(ctx context.Context, base *config.Config, source, detector string, cameras int, decodeFPS float64, log *slog.Logger) (PipelineResult, error) {
	cfg := *base
	kind, model, _ := strings.Cut(detector, ":")
	cfg.Faces.Detector, cfg.Faces.Model = kind, model
	cfg.MQTT.Broker, cfg.MQTT.Listen = config.EmbeddedBroker, "127.0.0.1:0"
	cfg.Web.Enabled = false // the pipeline is measured, not the page (which the demo's config turns on)
	cfg.Cameras = nil
	for i := range cameras {
		cfg.Cameras = append(cfg.Cameras, cfg.Capture.Camera(fmt.Sprintf("bench%d", i+1), source, 0))
	}
	res := PipelineResult{Detector: kind, Cameras: cameras, DecodeFPS: decodeFPS}
	// An outbox of its own: not the installed daemon's (which holds it), nor
	// one an interrupted bench left verdicts in.
	box, err := os.MkdirTemp("", "deepfaked-bench-outbox")
	if err != nil {
		return res, fmt.Errorf("bench outbox: %w", err)
	}
	defer os.RemoveAll(box)
	cfg.MQTT.Outbox.Dir = box
	resetPeakRSS()
	d, err := daemon.New(ctx, &cfg, log)
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
	w, err := mqttc.WatchDaemon(ctx, d.MQTTOptions(), cfg.MQTT.TopicPrefix+"/#", func(topic string, payload []byte) {
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
	if err := errors.Join(d.Run(ctx), w.Stop(), bad); err != nil {
		return res, err
	}
	res.CPUPercent = 100 * (cpuTime() - cpu0).Seconds() / time.Since(start).Seconds()
	res.PeakRSSMB = peakRSSMB()
	// After the daemon, so that its peak RSS is not raised by what this pass
	// leaves in the heap.
	if res.DetectFPS, err = Source(ctx, &cfg, source, kind, log); err != nil {
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

// Source is the frames/s of reading source at fps 0 on one goroutine, as
// a pipeline camera does, and detecting faces in each frame with detector
// (cfg's faces: options) unless it is empty.
func Source(ctx context.Context, cfg *config.Config, source, detector string, log *slog.Logger) (float64, error) {
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
	cam, err := capture.Open(ctx, setup.CameraOptions(cfg.Capture, cfg.Capture.Camera("bench", source, 0)), log)
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

// percentile is the q-quantile of sorted values (the lower one).
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// Model times backbone+head on random input (the model's cost does not
// depend on pixel values), after one warm-up run per batch size, for each
// backbone (model.backbone when none is given; FP32 and INT8, say) with
// model.head. The backbones take turns run by run, so that a noisy machine
// slows them alike and the ratio to the first holds.
func Model(cfg *config.Config, backbones []string, batches []int, iterations int, log *slog.Logger) ([]ModelResult, error) {
	if len(backbones) == 0 {
		backbones = []string{cfg.Model.Backbone}
	}
	eng, err := setup.Engine(cfg, log)
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
	var out []ModelResult
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
			out = append(out, ModelResult{Backbone: b, Batch: n, MSPerBatch: ms, MSPerFace: ms / float64(n),
				FacesPerS: 1e3 * float64(n) / ms, VsFirst: spent[0].Seconds() / spent[i].Seconds()})
		}
	}
	return out, nil
}

// WriteTable prints the report as tables: the pipeline per detector, its
// stages, and the model per backbone and batch size.
func (r Report) WriteTable(w io.Writer) error {
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
		for _, name := range StageNames {
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
	return tw.Flush()
}
