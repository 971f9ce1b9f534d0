// Package evalvideo is `deepfaked eval --videos` without the command line:
// a labelled folder of videos, each run through the daemon's own pipeline
// as a camera of its own, scored per video (the mean p_fake of its frames
// with a face, and each track rule's score) and measured over the videos,
// with the predictions CSV and the ROC pictures.
package evalvideo

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
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
	"github.com/deepfaked/deepfaked/contract"
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

// DefaultFPS is `eval --videos --fps`'s default. Every frame of a 30 fps clip costs six
// times as much as 5 per second and adds little: neighbouring frames show the
// same face, and 5/s still gives a 10 s clip some 50 frames, well above the
// track rules' tracks.min_frames and tracks.confident.count defaults (5, 11).
// A camera configured at a lower fps sees fewer frames; pass its fps to
// evaluate what it sees.
const DefaultFPS = 5

// ScoreFrameMean is the per-video score without tracks: the mean over frames
// with a face of the frame's p_fake (the maximum over its faces).
const ScoreFrameMean = "frame_mean"

// TrackRules are the track rules scored side by side, in the table's order.
func TrackRules() []track.Rule { return []track.Rule{track.Mean, track.Confident, track.EMA} }

// ScoreNames are the per-video scores: ScoreFrameMean, then each track rule.
func ScoreNames() []string {
	names := []string{ScoreFrameMean}
	for _, r := range TrackRules() {
		names = append(names, string(r))
	}
	return names
}

// Options say which videos to evaluate and how.
type Options struct {
	// Dir is a labelled folder of videos (package dataset's rules).
	Dir string
	// FPS is frames analysed per second of video (0: every frame); Jobs how
	// many videos run at once, each a camera of one pipeline.
	FPS  float64
	Jobs int
	// Loaded is told the folder's counts before any video is read.
	Loaded func(f *dataset.Folder)
	// Progress is told the videos done (read or left out) of total and the
	// faces seen so far; Warn of each video left out.
	Progress func(done, total, faces int)
	Warn     func(format string, args ...any)
	Log      *slog.Logger
}

// Run evaluates the model cfg configures on every video of o.Dir, each
// through the daemon's own pipeline (detector, preprocessing, model,
// threshold, track rules) as a camera of its own: per video the mean p_fake
// of its frames with a face and each track rule's score, and the metrics
// of each over the videos. Videos that cannot be read are left out and
// listed; it fails when none could be read.
func Run(ctx context.Context, cfg *config.Config, o Options) (*Report, error) {
	if !(o.FPS >= 0) || math.IsInf(o.FPS, 0) {
		return nil, fmt.Errorf("--fps %v: want a number >= 0 (0: every frame)", o.FPS)
	}
	if o.Jobs < 1 {
		return nil, fmt.Errorf("--jobs %d: want at least 1", o.Jobs)
	}
	if o.Progress == nil {
		o.Progress = func(int, int, int) {}
	}
	if o.Warn == nil {
		o.Warn = func(string, ...any) {}
	}
	// The data folder's rules, as for images: real/ and fake/, or labels.csv.
	folder, err := dataset.Load(o.Dir)
	if err != nil {
		return nil, err
	}
	if o.Loaded != nil {
		o.Loaded(folder)
	}
	var failed []Failure
	for _, s := range folder.Skipped {
		failed = append(failed, Failure{Path: s.Path, Error: s.Reason})
	}
	jobs := make([]job, len(folder.Samples))
	for i, s := range folder.Samples {
		jobs[i] = job{rel: s.Path, path: filepath.Join(o.Dir, filepath.FromSlash(s.Path)), label: s.Label}
	}

	log := o.Log
	eng, err := setup.Engine(cfg, log)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	clf, err := setup.Classifier(cfg, eng)
	if err != nil {
		return nil, err
	}
	defer clf.Close()
	if err := capture.SetFFmpegEnv(setup.IOTimeout(cfg)); err != nil {
		return nil, fmt.Errorf("capture.io_timeout: %w", err)
	}
	threshold := spec.DecisionThreshold(setup.Threshold(cfg), clf.Threshold())
	base := setup.TrackOptions(cfg)
	sink := &verdictSink{stats: map[string]*videoStats{}}
	for _, r := range TrackRules() {
		o := base
		o.Rule = r
		sink.opts = append(sink.opts, o)
	}
	started := time.Now()
	var mu sync.Mutex // the pipeline's camera goroutines and its inference goroutine both report
	done, total, faces := len(failed), len(jobs)+len(failed), 0
	report := func(videos, n int) {
		mu.Lock()
		defer mu.Unlock()
		done += videos
		faces += n
		o.Progress(done, total, faces)
	}
	report(0, 0)
	sink.faces = func(n int) { report(0, n) } // under sink.mu: report has a lock of its own

	po := setup.PipelineOptions(cfg)
	po.Log = log
	po.Run = "eval-" + time.Now().UTC().Format("20060102T150405Z")
	// Verdicts are what eval reads, whatever mqtt.verdicts says; events
	// would only write snapshots, and no crops are collected.
	po.Verdicts = true
	po.Events = pipeline.EventOptions{}
	po.Collector = nil

	rep := &Report{Videos: len(jobs) + len(folder.Skipped), FPS: o.FPS, Threshold: threshold,
		Rule: string(base.Rule), MinFrames: base.MinFrames, Metrics: map[string]train.Metrics{}, NoFace: []string{}}
	for start := 0; start < len(jobs); start += o.Jobs {
		batch := jobs[start:min(start+o.Jobs, len(jobs))]
		var readable []job
		for _, j := range batch {
			// A file that does not open is retried forever by a camera, as a
			// recording still being written should be; here it is an error.
			if _, err := capture.Probe(setup.CameraOptions(cfg.Capture, cfg.Capture.Camera(j.rel, j.path, o.FPS))); err != nil {
				o.Warn("%s: unreadable, left out: %v", j.path, err)
				failed = append(failed, Failure{Path: j.rel, Error: err.Error()})
				report(1, 0)
				continue
			}
			readable = append(readable, j)
			sink.mu.Lock()
			sink.stats[j.rel] = &videoStats{tracks: map[int64][]track.Aggregate{}}
			sink.mu.Unlock()
		}
		if err := runVideos(ctx, cfg, eng, clf, po, sink, readable, o.FPS, func() { report(1, 0) }, log); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sink.mu.Lock()
		err := sink.err
		for _, j := range readable {
			st := sink.stats[j.rel]
			rep.Results = append(rep.Results, &Result{Rel: j.rel, Label: j.label, Frames: st.frames, Faces: st.faces,
				Tracks: len(st.tracks), Scores: st.scores(base.MinFrames)})
		}
		sink.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	rep.Seconds = time.Since(started).Seconds()
	rep.Unreadable = failed
	if rep.Unreadable == nil {
		rep.Unreadable = []Failure{}
	}
	if len(rep.Results) == 0 {
		return rep, fmt.Errorf("%s: none of the %d video(s) could be read", o.Dir, rep.Videos)
	}
	rep.Scores = make([][]float64, len(ScoreNames()))
	for _, r := range rep.Results {
		if !r.HasFace() {
			rep.NoFace = append(rep.NoFace, r.Rel)
			continue
		}
		rep.Labels = append(rep.Labels, train.ClassOf(r.Label))
		for k := range rep.Scores {
			rep.Scores[k] = append(rep.Scores[k], r.Scores[k])
		}
	}
	rep.Scored = len(rep.Labels)
	for k, name := range ScoreNames() {
		m, err := train.Evaluate(rep.Labels, rep.Scores[k], threshold)
		if err != nil {
			return nil, err
		}
		rep.Metrics[name] = m
	}
	return rep, nil
}

// job is one listed video.
type job struct {
	rel   string // as the folder lists it (slash-separated): the camera's name, the report's
	path  string // on disk
	label string // dataset.Real or dataset.Fake
}

// Result is one read video's scores.
type Result struct {
	Rel                   string // as the folder lists it
	Label                 string // dataset.Real or dataset.Fake
	Frames, Faces, Tracks int
	// Scores are in ScoreNames' order; NaN when the video showed no face.
	Scores []float64
}

// HasFace says whether any face was found in the video.
func (r *Result) HasFace() bool { return r.Faces > 0 }

// Failure is a video that could not be read, and why.
type Failure struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Report is the videos' metrics per score (what `eval --videos --json` prints).
type Report struct {
	Videos     int                      `json:"videos"` // listed
	Scored     int                      `json:"scored"` // read, with a face: the metrics' n
	NoFace     []string                 `json:"no_face"`
	Unreadable []Failure                `json:"unreadable"`
	FPS        float64                  `json:"fps"`
	Threshold  float64                  `json:"threshold"`
	Rule       string                   `json:"rule"` // tracks.rule: the daemon's
	MinFrames  int                      `json:"min_frames"`
	Metrics    map[string]train.Metrics `json:"metrics"` // by score name
	// Results are the read videos; Labels and Scores (by ScoreNames) those
	// with a face, as the metrics took them.
	Results []*Result   `json:"-"`
	Labels  []int       `json:"-"`
	Scores  [][]float64 `json:"-"`
	// Seconds is how long reading the videos took.
	Seconds float64 `json:"-"`
}

// videoStats gathers one video's verdicts as they are published.
type videoStats struct {
	frames, faces int
	// faceFrames counts frames with a face; frameSum adds their p_fake.
	faceFrames int
	frameSum   float64
	// tracks holds each track's aggregates, one per TrackRules entry.
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

// scores are the video's scores in ScoreNames' order. Under a track rule a
// video scores as its most fake track (a video is fake if anyone in it is),
// among the tracks seen at least minFrames times: a face glimpsed for a
// frame or two is a detector's mistake more often than a person. When no
// track is that long, every track counts, so that a short clip is scored.
func (s *videoStats) scores(minFrames int) []float64 {
	out := make([]float64, 1+len(TrackRules()))
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
	opts []track.Options // one per TrackRules entry

	mu    sync.Mutex
	stats map[string]*videoStats // by camera name (the video's rel)
	err   error                  // the first verdict it could not take
	// faces is told each verdict's face count, for the progress line.
	faces func(n int)
}

func (s *verdictSink) Publish(topic string, payload []byte) error {
	// Events are off in eval; anything else is not a verdict. Not
	// Topics.CameraOf: eval's cameras are named by the videos' paths, which
	// are no camera names.
	if !strings.HasSuffix(topic, "/"+contract.KindVerdict) {
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

// endingSource tells when its video has been read to the end.
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

// runVideos runs the daemon's pipeline over vids, each a camera of its own
// with its own detector and preprocessor, built as `deepfaked run` builds a
// configured camera's; it returns when every video has ended.
func runVideos(ctx context.Context, cfg *config.Config, eng *engine.Engine, clf *infer.Classifier, po pipeline.Options,
	sink *verdictSink, vids []job, fps float64, ended func(), log *slog.Logger) error {
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
		src, err := capture.Open(ctx, setup.CameraOptions(cfg.Capture, cfg.Capture.Camera(v.rel, v.path, fps)), log)
		if err != nil {
			return fmt.Errorf("%s: %w", v.path, err)
		}
		closers = append(closers, func() { src.Close() })
		cams = append(cams, pipeline.Camera{Source: &endingSource{Source: src, ended: ended},
			Detector: det, Pre: pre, WholeFrame: cfg.Faces.Detector == face.None})
	}
	p, err := pipeline.New(po, clf, sink, cams)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// WritePredictions writes one CSV row per read video; a video without a
// face has empty scores and the prediction "none".
func WritePredictions(path string, r *Report) error {
	results, threshold, rule := r.Results, r.Threshold, r.Rule
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	head := []string{"video", "label", "frames", "faces", "tracks"}
	head = append(head, ScoreNames()...)
	_ = w.Write(append(head, "predicted"))
	ruleAt := 0
	for k, n := range ScoreNames() {
		if n == rule {
			ruleAt = k
		}
	}
	for _, r := range results {
		row := []string{r.Rel, r.Label, strconv.Itoa(r.Frames), strconv.Itoa(r.Faces), strconv.Itoa(r.Tracks)}
		for _, s := range r.Scores {
			if math.IsNaN(s) {
				row = append(row, "")
			} else {
				row = append(row, strconv.FormatFloat(s, 'g', 6, 64))
			}
		}
		pred := contract.LabelNone
		if r.HasFace() {
			pred = contract.Label(r.Scores[ruleAt], threshold)
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

// WriteRulesROC draws train.WriteROCPNG's ROC picture for each score and
// lays them out two by two under their names, the configured rule marked.
func WriteRulesROC(path string, r *Report) error {
	names, rule, labels, scores := ScoreNames(), r.Rule, r.Labels, r.Scores
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

// WriteTable prints one row per score: the metrics at the decision
// threshold and the confusion counts; dir names the folder.
func (r *Report) WriteTable(w io.Writer, dir string) error {
	fmt.Fprintf(w, "%s: %d video(s), %d scored, %d with no face, %d unreadable (both left out of the metrics)\n",
		dir, r.Videos, r.Scored, len(r.NoFace), len(r.Unreadable))
	fmt.Fprintf(w, "fps %g, threshold %.3f; a track rule scores a video as its most fake track of at least %d frame(s); * tracks.rule (the daemon's)\n",
		r.FPS, r.Threshold, r.MinFrames)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "score\tn\taccuracy\tprecision\trecall\tF1\tROC-AUC\ttn\tfp\tfn\ttp\t")
	for _, name := range ScoreNames() {
		m := r.Metrics[name]
		if name == r.Rule {
			name += " *"
		}
		c := m.Confusion
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%s\t%d\t%d\t%d\t%d\t\n", name, m.N, m.Accuracy, m.Precision, m.Recall,
			m.F1, train.FormatAUC(m.AUC), c[0][0], c[0][1], c[1][0], c[1][1])
	}
	return tw.Flush()
}
