package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/deepfaked/deepfaked/contract"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/daemon/track"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train"
)

// defaultVideoFPS is --fps's default. Every frame of a 30 fps clip costs six
// times as much as 5 per second and adds little: neighbouring frames show the
// same face, and 5/s still gives a 10 s clip some 50 frames, well above the
// track rules' tracks.min_frames and tracks.confident.count defaults (5, 11).
// A camera configured at a lower fps sees fewer frames; pass its fps to
// evaluate what it sees.
const defaultVideoFPS = 5

// scoreFrameMean is the per-video score without tracks: the mean over frames
// with a face of the frame's p_fake (the maximum over its faces).
const scoreFrameMean = "frame_mean"

// trackRules are the track rules scored side by side, in the table's order.
func trackRules() []track.Rule { return []track.Rule{track.Mean, track.Confident, track.EMA} }

// scoreNames are the per-video scores: scoreFrameMean, then each track rule.
func scoreNames() []string {
	names := []string{scoreFrameMean}
	for _, r := range trackRules() {
		names = append(names, string(r))
	}
	return names
}

// videoEvalOptions are the flags of `eval --videos`.
type videoEvalOptions struct {
	config, dir, predictions, roc string
	fps                           float64
	jobs                          int
	json                          bool
}

// videoJob is one listed video.
type videoJob struct {
	rel   string // as the folder lists it (slash-separated): the camera's name, the report's
	path  string // on disk
	label string // dataset.Real or dataset.Fake
}

// videoResult is one read video's scores.
type videoResult struct {
	videoJob
	frames, faces, tracks int
	// scores are in scoreNames' order; NaN when the video showed no face.
	scores []float64
}

func (r *videoResult) hasFace() bool { return r.faces > 0 }

// videoFailure is a video that could not be read, and why.
type videoFailure struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// videoReport is what --json prints: the image eval's metrics per score.
type videoReport struct {
	Videos     int                      `json:"videos"` // listed
	Scored     int                      `json:"scored"` // read, with a face: the metrics' n
	NoFace     []string                 `json:"no_face"`
	Unreadable []videoFailure           `json:"unreadable"`
	FPS        float64                  `json:"fps"`
	Threshold  float64                  `json:"threshold"`
	Rule       string                   `json:"rule"` // tracks.rule: the daemon's
	MinFrames  int                      `json:"min_frames"`
	Metrics    map[string]train.Metrics `json:"metrics"` // by score name
}

// videoStats gathers one video's verdicts as they are published.
type videoStats struct {
	frames, faces int
	// faceFrames counts frames with a face; frameSum adds their p_fake.
	faceFrames int
	frameSum   float64
	// tracks holds each track's aggregates, one per trackRules entry.
	tracks map[int64][]track.Aggregate
}

func (s *videoStats) add(v *contract.Verdict, opts []track.Options) {
	s.frames++
	if len(v.Faces) == 0 {
		return
	}
	s.faceFrames++
	s.frameSum += v.PFake
	s.faces += len(v.Faces)
	for _, f := range v.Faces {
		aggs := s.tracks[f.Track]
		if aggs == nil {
			aggs = make([]track.Aggregate, len(opts))
			for k, o := range opts {
				aggs[k] = track.NewAggregate(o)
			}
			s.tracks[f.Track] = aggs
		}
		for k := range aggs {
			aggs[k].Add(f.PFake)
		}
	}
}

// scores are the video's scores in scoreNames' order. Under a track rule a
// video scores as its most fake track (a video is fake if anyone in it is),
// among the tracks seen at least minFrames times: a face glimpsed for a
// frame or two is a detector's mistake more often than a person. When no
// track is that long, every track counts, so that a short clip is scored.
func (s *videoStats) scores(minFrames int) []float64 {
	out := make([]float64, 1+len(trackRules()))
	for k := range out {
		out[k] = math.NaN()
	}
	if s.faceFrames == 0 {
		return out
	}
	out[0] = s.frameSum / float64(s.faceFrames)
	long := false
	for _, aggs := range s.tracks {
		long = long || aggs[0].Frames() >= minFrames
	}
	for _, aggs := range s.tracks {
		if long && aggs[0].Frames() < minFrames {
			continue
		}
		for k := range aggs {
			if sc := aggs[k].Score(); math.IsNaN(out[1+k]) || sc > out[1+k] {
				out[1+k] = sc
			}
		}
	}
	return out
}

// verdictSink is the pipeline's Publisher in eval: instead of sending
// verdicts over MQTT it decodes them, as a subscriber would, into each
// video's stats. It sees the JSON the daemon publishes, so eval scores what
// subscribers get.
type verdictSink struct {
	opts []track.Options // one per trackRules entry

	topics contract.Topics
	mu     sync.Mutex
	stats  map[string]*videoStats // by camera name (the video's rel)
	err    error                  // the first verdict it could not take
	// faces is told each verdict's face count, for the progress line.
	faces func(n int)
}

func (s *verdictSink) Publish(topic string, payload []byte) error {
	// Events are off in eval; anything else is not a verdict.
	if _, kind, _ := s.topics.CameraOf(topic); kind != contract.KindVerdict {
		return nil
	}
	var v contract.Verdict
	err := json.Unmarshal(payload, &v)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("verdict on %s: %w", topic, err)
	} else if st := s.stats[v.Camera]; st == nil {
		err = fmt.Errorf("verdict for unknown video %q", v.Camera)
	} else {
		st.add(&v, s.opts)
		if s.faces != nil {
			s.faces(len(v.Faces))
		}
	}
	if err != nil && s.err == nil {
		s.err = err // the pipeline only logs a publish error; eval must fail on it
	}
	return err
}

// PublishRetained takes the retained state and score topics, which eval
// does not use (events are off).
func (s *verdictSink) PublishRetained(string, []byte) error { return nil }

// videoProgress draws videos done of total and the faces seen so far; the
// pipeline's camera goroutines and its inference goroutine both report.
type videoProgress struct {
	mu                 sync.Mutex
	bar                *progressBar
	done, total, faces int
}

func (p *videoProgress) add(videos, faces int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += videos
	p.faces += faces
	p.bar.update(p.done, p.total, -1, fmt.Sprintf("%d faces", p.faces))
}

// warn prints a warning on a line of its own, below the progress line.
func (p *videoProgress) warn(w io.Writer, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar.tty && p.bar.drawn {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "warning: "+format+"\n", args...)
}

// endingSource tells the progress line when its video has been read to the end.
type endingSource struct {
	pipeline.Source
	ended func()
	once  sync.Once
}

func (s *endingSource) Next(ctx context.Context) (*capture.Frame, error) {
	f, err := s.Source.Next(ctx)
	if err != nil {
		s.once.Do(s.ended)
	}
	return f, err
}

// evalVideos runs `deepfaked eval --videos`.
func evalVideos(ctx context.Context, o videoEvalOptions, stdout, stderr io.Writer) error {
	if !(o.fps >= 0) || math.IsInf(o.fps, 0) {
		return fmt.Errorf("--fps %v: want a number >= 0 (0: every frame)", o.fps)
	}
	if o.jobs < 1 {
		return fmt.Errorf("--jobs %d: want at least 1", o.jobs)
	}
	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	// The data folder's rules, as for images: real/ and fake/, or labels.csv.
	folder, err := dataset.Load(o.dir)
	if err != nil {
		return err
	}
	real, fake := folder.Counts()
	fmt.Fprintf(stderr, "%s: %d real, %d fake videos (%s)\n", o.dir, real, fake,
		folder.LabelsFrom())
	var failed []videoFailure
	for _, s := range folder.Skipped {
		failed = append(failed, videoFailure{Path: s.Path, Error: s.Reason})
	}
	jobs := make([]videoJob, len(folder.Samples))
	for i, s := range folder.Samples {
		jobs[i] = videoJob{rel: s.Path, path: filepath.Join(o.dir, filepath.FromSlash(s.Path)), label: s.Label}
	}

	log := newLogger(slog.LevelWarn)
	eng, err := setup.Engine(cfg, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	clf, err := setup.Classifier(cfg, eng)
	if err != nil {
		return err
	}
	defer clf.Close()
	if err := capture.SetFFmpegEnv(setup.IOTimeout(cfg)); err != nil {
		return fmt.Errorf("capture.io_timeout: %w", err)
	}
	threshold := spec.DecisionThreshold(setup.Threshold(cfg), clf.Threshold())
	base := setup.TrackOptions(cfg)
	sink := &verdictSink{topics: contract.Topics{Prefix: cfg.MQTT.TopicPrefix}, stats: map[string]*videoStats{}}
	for _, r := range trackRules() {
		o := base
		o.Rule = r
		sink.opts = append(sink.opts, o)
	}
	started := time.Now()
	prog := &videoProgress{bar: newProgressBar(stderr, "videos"), total: len(jobs) + len(failed)}
	prog.add(len(failed), 0)
	sink.faces = func(n int) { prog.add(0, n) } // under sink.mu: prog has a lock of its own

	po := setup.PipelineOptions(cfg)
	po.Log = log
	po.Run = "eval-" + time.Now().UTC().Format("20060102T150405Z")
	// Verdicts are what eval reads, whatever mqtt.verdicts says; events
	// would only write snapshots, and no crops are collected.
	po.Verdicts = true
	po.Events = pipeline.EventOptions{}
	po.Collector = nil

	var results []*videoResult
	for start := 0; start < len(jobs); start += o.jobs {
		batch := jobs[start:min(start+o.jobs, len(jobs))]
		var readable []videoJob
		for _, j := range batch {
			// A file that does not open is retried forever by a camera, as a
			// recording still being written should be; here it is an error.
			if err := capture.Probe(setup.CameraOptions(config.Camera{Name: j.rel, Source: j.path, FPS: o.fps})); err != nil {
				prog.warn(stderr, "%s: unreadable, left out: %v", j.path, err)
				failed = append(failed, videoFailure{Path: j.rel, Error: err.Error()})
				prog.add(1, 0)
				continue
			}
			readable = append(readable, j)
			sink.mu.Lock()
			sink.stats[j.rel] = &videoStats{tracks: map[int64][]track.Aggregate{}}
			sink.mu.Unlock()
		}
		if err := runVideos(ctx, cfg, eng, clf, po, sink, readable, o.fps, prog, log); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sink.mu.Lock()
		err := sink.err
		for _, j := range readable {
			st := sink.stats[j.rel]
			results = append(results, &videoResult{videoJob: j, frames: st.frames, faces: st.faces,
				tracks: len(st.tracks), scores: st.scores(base.MinFrames)})
		}
		sink.mu.Unlock()
		if err != nil {
			return err
		}
	}
	prog.bar.done()
	// The bar draws only when a video ends: the last faces may not show on it.
	fmt.Fprintf(stderr, "videos: %d read, %d faces, in %.1fs\n", len(results), prog.faces, time.Since(started).Seconds())

	rep := videoReport{Videos: len(jobs) + len(folder.Skipped), Unreadable: failed, FPS: o.fps, Threshold: threshold,
		Rule: string(base.Rule), MinFrames: base.MinFrames, Metrics: map[string]train.Metrics{}, NoFace: []string{}}
	if rep.Unreadable == nil {
		rep.Unreadable = []videoFailure{}
	}
	var labels []int
	scores := make([][]float64, len(scoreNames()))
	for _, r := range results {
		if !r.hasFace() {
			rep.NoFace = append(rep.NoFace, r.rel)
			continue
		}
		labels = append(labels, train.ClassOf(r.label))
		for k := range scores {
			scores[k] = append(scores[k], r.scores[k])
		}
	}
	rep.Scored = len(labels)
	for k, name := range scoreNames() {
		m, err := train.Evaluate(labels, scores[k], threshold)
		if err != nil {
			return err
		}
		rep.Metrics[name] = m
	}

	if o.predictions != "" {
		if err := writeVideoPredictions(o.predictions, results, threshold, string(base.Rule)); err != nil {
			return err
		}
	}
	if o.roc != "" {
		if err := writeRulesROC(o.roc, scoreNames(), string(base.Rule), labels, scores); err != nil {
			return err
		}
	}
	if o.json {
		if err := json.NewEncoder(stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		printVideoReport(stdout, o.dir, &rep)
	}
	if len(failed) > 0 {
		fmt.Fprintf(stderr, "warning: %d of %d video(s) could not be read and are left out:\n", len(failed), rep.Videos)
		for _, f := range failed {
			fmt.Fprintf(stderr, "  %s: %s\n", f.Path, f.Error)
		}
	}
	if len(results) == 0 {
		return fmt.Errorf("%s: none of the %d video(s) could be read", o.dir, rep.Videos)
	}
	return nil
}

// runVideos runs the daemon's pipeline over vids, each a camera of its own
// with its own detector and preprocessor, built as `deepfaked run` builds a
// configured camera's; it returns when every video has ended.
func runVideos(ctx context.Context, cfg *config.Config, eng *engine.Engine, clf *infer.Classifier, po pipeline.Options,
	sink *verdictSink, vids []videoJob, fps float64, prog *videoProgress, log *slog.Logger) error {
	if len(vids) == 0 {
		return nil
	}
	var cams []pipeline.Camera
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for _, v := range vids {
		det, err := setup.Detector(cfg, eng)
		if err != nil {
			return err
		}
		closers = append(closers, func() { det.Close() })
		pre, err := preprocess.New(setup.PreprocessParams(cfg, clf.Meta()))
		if err != nil {
			return fmt.Errorf("%s: %w", v.path, err)
		}
		closers = append(closers, func() { pre.Close() })
		src, err := capture.Open(ctx, setup.CameraOptions(config.Camera{Name: v.rel, Source: v.path, FPS: fps}), log)
		if err != nil {
			return fmt.Errorf("%s: %w", v.path, err)
		}
		closers = append(closers, func() { src.Close() })
		cams = append(cams, pipeline.Camera{Source: &endingSource{Source: src, ended: func() { prog.add(1, 0) }},
			Detector: det, Pre: pre, WholeFrame: cfg.Faces.Detector == face.None})
	}
	p, err := pipeline.New(po, clf, sink, cams)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// printVideoReport prints one row per score: the metrics at the decision
// threshold and the confusion counts.
func printVideoReport(w io.Writer, dir string, r *videoReport) {
	fmt.Fprintf(w, "%s: %d video(s), %d scored, %d with no face, %d unreadable (both left out of the metrics)\n",
		dir, r.Videos, r.Scored, len(r.NoFace), len(r.Unreadable))
	fmt.Fprintf(w, "fps %g, threshold %.3f; a track rule scores a video as its most fake track of at least %d frame(s); * tracks.rule (the daemon's)\n",
		r.FPS, r.Threshold, r.MinFrames)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "score\tn\taccuracy\tprecision\trecall\tF1\tROC-AUC\ttn\tfp\tfn\ttp\t")
	for _, name := range scoreNames() {
		m := r.Metrics[name]
		if name == r.Rule {
			name += " *"
		}
		c := m.Confusion
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%s\t%d\t%d\t%d\t%d\t\n", name, m.N, m.Accuracy, m.Precision, m.Recall,
			m.F1, fmtAUC(m.AUC), c[0][0], c[0][1], c[1][0], c[1][1])
	}
	tw.Flush()
	if len(r.NoFace) > 0 {
		fmt.Fprintf(w, "no face found in: %s\n", listSome(r.NoFace))
	}
}

// writeVideoPredictions writes one row per read video; a video without a
// face has empty scores and the prediction "none".
func writeVideoPredictions(path string, results []*videoResult, threshold float64, rule string) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	head := []string{"video", "label", "frames", "faces", "tracks"}
	head = append(head, scoreNames()...)
	_ = w.Write(append(head, "predicted"))
	ruleAt := 0
	for k, n := range scoreNames() {
		if n == rule {
			ruleAt = k
		}
	}
	for _, r := range results {
		row := []string{r.rel, r.label, strconv.Itoa(r.frames), strconv.Itoa(r.faces), strconv.Itoa(r.tracks)}
		for _, s := range r.scores {
			if math.IsNaN(s) {
				row = append(row, "")
			} else {
				row = append(row, strconv.FormatFloat(s, 'g', 6, 64))
			}
		}
		pred := contract.LabelNone
		if r.hasFace() {
			pred = contract.LabelReal
			pred = contract.Label(r.scores[ruleAt], threshold)
		}
		_ = w.Write(append(row, pred))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("predictions %s: %w", path, err)
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("predictions %s: %w", path, err)
	}
	return nil
}

// writeRulesROC draws train.WriteROCPNG's ROC picture for each score and
// lays them out two by two under their names, the configured rule marked.
func writeRulesROC(path string, names []string, rule string, labels []int, scores [][]float64) error {
	tmp, err := os.MkdirTemp("", "deepfaked-roc")
	if err != nil {
		return fmt.Errorf("roc %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	const band, cols = 44, 2
	var panels []image.Image
	for k, name := range names {
		p := filepath.Join(tmp, name+".png")
		if err := train.WriteROCPNG(p, labels, scores[k]); err != nil {
			return fmt.Errorf("roc %s: %w", path, err)
		}
		img, err := decodePNG(p)
		if err != nil {
			return fmt.Errorf("roc %s: %w", path, err)
		}
		panels = append(panels, img)
	}
	pw, ph := panels[0].Bounds().Dx(), panels[0].Bounds().Dy()
	rows := (len(panels) + cols - 1) / cols
	out := image.NewRGBA(image.Rect(0, 0, cols*pw, rows*(ph+band)))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	for k, img := range panels {
		x, y := (k%cols)*pw, (k/cols)*(ph+band)
		title := names[k]
		if title == rule {
			title += " (tracks.rule)"
		}
		drawLabel(out, title, x+pw/2, y+band/2+4, 3)
		draw.Draw(out, image.Rect(x, y+band, x+pw, y+band+ph), img, img.Bounds().Min, draw.Src)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		return fmt.Errorf("roc %s: %w", path, err)
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("roc %s: %w", path, err)
	}
	return nil
}

func decodePNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// drawLabel writes s in black, centred on (cx, cy), in the 7×13 font scaled
// up scale times so that it reads at the panels' size.
func drawLabel(dst draw.Image, s string, cx, cy, scale int) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, s).Ceil()
	small := image.NewRGBA(image.Rect(0, 0, w, 13))
	d := font.Drawer{Dst: small, Src: image.NewUniform(color.Black), Face: face, Dot: fixed.P(0, 10)}
	d.DrawString(s)
	r := image.Rect(0, 0, w*scale, 13*scale).Add(image.Pt(cx-w*scale/2, cy-13*scale/2))
	xdraw.NearestNeighbor.Scale(dst, r, small, small.Bounds(), draw.Over, nil)
}

// errNoVideoFlags names the image-only flags that --videos refuses.
func errNoVideoFlags(names []string) error {
	return errors.New("--videos evaluates videos with the daemon's pipeline; " + strings.Join(names, ", ") + " only apply to --data")
}
