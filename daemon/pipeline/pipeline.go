// Package pipeline ties cameras to inference: each camera has a reader
// goroutine that decodes frames and a goroutine that finds faces in them and
// preprocesses the crops; one inference goroutine runs the faces of frames
// from all cameras through the classifier in shared batches (up to MaxFaces
// faces, waiting at most BatchWait for more) and publishes each frame's
// verdict. Frame buffers are pooled per camera; the verdict's JSON is a fresh
// slice per frame, which the publisher keeps until the broker acknowledges it.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/livestat"
	"github.com/deepfaked/deepfaked/daemon/track"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/ratelog"
	"github.com/deepfaked/deepfaked/train/collect"
)

// Source yields frames to analyse (a capture.Camera).
type Source interface {
	Name() string
	Next(ctx context.Context) (*capture.Frame, error)
	Release(*capture.Frame)
}

// Detector finds faces in a frame; each camera has its own (detectors are not
// safe for concurrent use).
type Detector interface {
	Detect(img gocv.Mat, dst []face.Box) ([]face.Box, error)
}

// Preprocessor turns a face box into model input.
type Preprocessor interface {
	Crop(box image.Rectangle, frame image.Point) image.Rectangle
	Fill(img gocv.Mat, crop image.Rectangle, dst []float32) error
}

// Classifier scores a batch of preprocessed faces and says which head did.
type Classifier interface {
	Classify(input []float32, n int, pFake []float32) (infer.HeadInfo, error)
	BackboneID() string
	HeadID() string
	Precision() string // the backbone's: spec.PrecisionFP32 or spec.PrecisionINT8
	Threshold() spec.Threshold
	InputSize() int
}

// Publisher sends a payload to a topic, retained or not.
type Publisher interface {
	Publish(topic string, payload []byte) error
	PublishRetained(topic string, payload []byte) error
}

// Collector keeps faces worth labelling; Offer must not block.
type Collector interface {
	Offer(f collect.Face) bool
}

// Camera is one source with its own detector and preprocessor.
type Camera struct {
	Source   Source
	Detector Detector
	Pre      Preprocessor
	// WholeFrame feeds the detector's boxes to the model as they are, without a
	// square face crop: for `faces.detector: none`, whose one box is the frame.
	WholeFrame bool
}

// Options configure a Pipeline.
type Options struct {
	Device      string
	Run         string // the verdicts' run id: one per daemon process
	TopicPrefix string
	// Threshold, when set, overrides the head's calibrated threshold (model.threshold).
	Threshold spec.Threshold
	// MaxFaces bounds the faces classified per frame, and per model run: the
	// faces of frames from all cameras share runs of up to MaxFaces faces
	// (faces.max_faces, >= 1).
	MaxFaces int
	// BatchWait is how long a model run waits for more cameras' faces
	// (model.batch_wait); with 0, or one camera, it runs with the frames
	// already waiting.
	BatchWait time.Duration
	Log       *slog.Logger
	// Collector, when set, is offered every classified face (train.collect).
	Collector Collector
	// Verdicts publishes each frame's verdict; without it only events, state
	// and score are published.
	Verdicts bool
	// Tracks follow faces across a camera's frames; every face in a verdict
	// carries its track id.
	Tracks track.Options
	// Events publishes per-track events, each camera's state and score.
	Events EventOptions
}

// Observer sees every published frame's Stages (`deepfaked bench` and the
// daemon's metrics install one each). It is called on the inference goroutine right after the publish, so it
// must return quickly, and st is only valid during the call.
type Observer interface {
	Observe(st *livestat.Stages)
}

// Pipeline runs cameras through a classifier to a publisher.
type Pipeline struct {
	opts Options
	clf  Classifier
	pub  Publisher
	cams []Camera
	log  *slog.Logger
	obs  []Observer
	// sample is one face's model input length, 3*S*S.
	sample int
	// cams' state once Run has started (for Stuck and Analysed), and when
	// the inference goroutine began its current model run and publish.
	states  atomic.Pointer[[]*camState]
	inModel atomic.Int64
	// pubFail limits the publish error lines (see publish).
	pubFail *ratelog.Limiter
	// clipFail rate-limits failures to keep frames for clips.
	clipFail *ratelog.Limiter
	// tracking is each camera's, in cams' order.
	tracking []*tracking
}

// New makes a pipeline; Run starts it.
func New(opts Options, clf Classifier, pub Publisher, cams []Camera) (*Pipeline, error) {
	if opts.MaxFaces < 1 {
		return nil, fmt.Errorf("pipeline: max faces %d: must be >= 1", opts.MaxFaces)
	}
	if opts.BatchWait < 0 {
		return nil, fmt.Errorf("pipeline: batch wait %s: must be >= 0", opts.BatchWait)
	}
	if len(cams) == 0 {
		return nil, errors.New("pipeline: no cameras")
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	p := &Pipeline{opts: opts, clf: clf, pub: pub, cams: cams, log: log, pubFail: ratelog.New(time.Minute), clipFail: ratelog.New(time.Minute)}
	for _, c := range cams {
		t, err := p.newTracking(c.Source.Name())
		if err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
		p.tracking = append(p.tracking, t)
	}
	return p, nil
}

// Observe adds o to the observers, which see each published frame's stage
// times in the order they were added; call it before Run. The times are taken
// on every frame anyway (a few time.Now calls into fields of the frame's
// pooled job), so observing costs only the observers' own work.
func (p *Pipeline) Observe(o Observer) { p.obs = append(p.obs, o) }

// job carries one preprocessed frame from a camera to the inference goroutine.
type job struct {
	// end marks the last job of a camera, which ends its tracks.
	end    bool
	st     livestat.Stages
	cam    *camState
	frame  int64
	ts     time.Time
	n      int
	boxes  []image.Rectangle
	input  []float32
	pFake  []float32
	result contract.Verdict
}

type camState struct {
	Camera
	tracking *tracking // used by the inference goroutine only
	name     string
	topic    string
	free     chan *job
	faces    []face.Box
	// For Stuck and Analysed, read from other goroutines: when the reader
	// went into Source.Next and the camera goroutine into detection (unix
	// ns, 0 when not there), frames published, their faces, frames skipped
	// for an error, when the last verdict was published (unix ns), and
	// whether the camera ended.
	inNext, inDetect atomic.Int64
	analysed         atomic.Int64
	faceCount        atomic.Int64
	skipped          atomic.Int64
	lastVerdict      atomic.Int64
	ended            atomic.Bool
	tally            tally
}

// tally counts a camera's verdicts by label and events by type and track
// state. Every key is made at the start, so counting is a lookup and an add.
type tally struct {
	verdicts map[string]*atomic.Int64
	events   map[string]map[string]*atomic.Int64
}

func newTally() tally {
	t := tally{verdicts: map[string]*atomic.Int64{}, events: map[string]map[string]*atomic.Int64{}}
	for _, l := range contract.VerdictLabels() {
		t.verdicts[l] = new(atomic.Int64)
	}
	for _, e := range contract.EventTypes() {
		t.events[e] = map[string]*atomic.Int64{}
		for _, s := range contract.TrackStates() {
			t.events[e][s] = new(atomic.Int64)
		}
	}
	return t
}

func (t *tally) verdict(label string) {
	if c := t.verdicts[label]; c != nil {
		c.Add(1)
	}
}

func (t *tally) event(typ, state string) {
	if c := t.events[typ][state]; c != nil {
		c.Add(1)
	}
}

// counts reads the tally into plain maps (for the stats).
func (t *tally) counts() (map[string]int64, map[string]map[string]int64) {
	v := make(map[string]int64, len(t.verdicts))
	for l, c := range t.verdicts {
		v[l] = c.Load()
	}
	e := make(map[string]map[string]int64, len(t.events))
	for typ, states := range t.events {
		e[typ] = make(map[string]int64, len(states))
		for s, c := range states {
			e[typ][s] = c.Load()
		}
	}
	return v, e
}

// jobsPerCamera lets a camera preprocess its next frame while the previous
// one is being classified, and no more: live sources drop stale frames in
// capture rather than queueing them here.
const jobsPerCamera = 2

// Run analyses frames until every camera has ended (nil) or ctx is cancelled
// (nil after the frames in flight are published). Errors of single frames are
// logged, not returned: one bad frame must not stop the daemon.
func (p *Pipeline) Run(ctx context.Context) error {
	size := p.clf.InputSize()
	sample := 3 * size * size
	p.sample = sample
	jobs := make(chan *job, len(p.cams))
	var wg sync.WaitGroup
	states := make([]*camState, len(p.cams))
	for i := range p.cams {
		cs := &camState{Camera: p.cams[i], tracking: p.tracking[i], name: p.cams[i].Source.Name(), free: make(chan *job, jobsPerCamera),
			faces: make([]face.Box, 0, p.opts.MaxFaces*2), tally: newTally()}
		states[i] = cs
		cs.topic = contract.Topics{Prefix: p.opts.TopicPrefix}.Verdict(cs.name)
		for range jobsPerCamera {
			cs.free <- &job{cam: cs,
				boxes: make([]image.Rectangle, 0, p.opts.MaxFaces),
				input: make([]float32, p.opts.MaxFaces*sample),
				pFake: make([]float32, p.opts.MaxFaces),
				result: contract.Verdict{Device: p.opts.Device, Camera: cs.name, Run: p.opts.Run,
					Faces: make([]contract.FaceResult, 0, p.opts.MaxFaces)}}
		}
	}
	p.states.Store(&states)
	for _, cs := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cs.ended.Store(true)
			p.runCamera(ctx, cs, sample, jobs)
		}()
	}
	go func() {
		wg.Wait()
		close(jobs)
	}()
	p.infer(jobs)
	return nil
}

// read is one Source.Next result, with when it was asked for and returned.
type read struct {
	f          *capture.Frame
	err        error
	next, read time.Time
}

// runCamera reads frames on a goroutine of its own and detects and
// preprocesses them on this one, so that decoding the next frame overlaps
// finding faces in this one. The hand-over is unbuffered: the reader holds at
// most one frame, which waits at most one detection (a live source's frame is
// that much older when analysed). The reader stops after the first error,
// which is the last thing it sends, so every frame it read is handled.
func (p *Pipeline) runCamera(ctx context.Context, cs *camState, sample int, jobs chan<- *job) {
	log := p.log.With("camera", cs.name)
	defer func() { // after its frames, so that its tracks end after their last face
		j := <-cs.free
		j.end, j.n = true, 0
		jobs <- j
	}()
	reads := make(chan read)
	go func() {
		for {
			next := time.Now()
			cs.inNext.Store(next.UnixNano())
			f, err := cs.Source.Next(ctx)
			cs.inNext.Store(0)
			reads <- read{f: f, err: err, next: next, read: time.Now()}
			if err != nil {
				return
			}
		}
	}()
	for {
		r := <-reads
		f, err, next, read := r.f, r.err, r.next, r.read
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			log.Info("camera ended")
			return
		case ctx.Err() != nil:
			return
		default:
			log.Error("camera stopped", "err", err)
			return
		}
		j := <-cs.free
		j.st.Next, j.st.Read = next, read
		cs.inDetect.Store(time.Now().UnixNano())
		err = p.prepare(cs, f, j, sample)
		cs.inDetect.Store(0)
		if err != nil {
			log.Warn("frame skipped", "frame", f.Index, "err", err)
			cs.skipped.Add(1)
			cs.Source.Release(f)
			cs.free <- j
			continue
		}
		if c := p.opts.Events.Clips; c != nil {
			if err := c.Encode(cs.name, f.Index, f.Time, f.Mat); err != nil {
				p.clipFail.Log(log, slog.LevelWarn, time.Now(), "frame not kept for clips", "frame", f.Index, "err", err)
			}
		}
		cs.Source.Release(f)
		jobs <- j
	}
}

// prepare detects faces in f and fills j with their model input.
func (p *Pipeline) prepare(cs *camState, f *capture.Frame, j *job, sample int) error {
	j.frame, j.ts, j.n, j.boxes = f.Index, f.Time, 0, j.boxes[:0]
	faces, err := cs.Detector.Detect(f.Mat, cs.faces[:0])
	cs.faces = faces[:0]
	j.st.Detected = time.Now()
	if err != nil {
		return fmt.Errorf("face detection: %w", err)
	}
	if len(faces) > p.opts.MaxFaces {
		faces = faces[:p.opts.MaxFaces] // detectors sort by score
	}
	frame := image.Pt(f.Mat.Cols(), f.Mat.Rows())
	for _, b := range faces {
		crop := b.Rect
		if !cs.WholeFrame {
			crop = cs.Pre.Crop(b.Rect, frame)
		}
		if crop.Empty() {
			continue
		}
		if err := cs.Pre.Fill(f.Mat, crop, j.input[j.n*sample:(j.n+1)*sample]); err != nil {
			return fmt.Errorf("preprocess face %v: %w", b.Rect, err)
		}
		j.boxes = append(j.boxes, b.Rect)
		j.n++
	}
	j.st.Preprocessed = time.Now()
	return nil
}

// threshold is the one rule: the configured threshold, else the head's own, else 0.5.
func (p *Pipeline) threshold(head spec.Threshold) float64 {
	return spec.DecisionThreshold(p.opts.Threshold, head)
}

// infer takes frames as the cameras send them and runs their faces through
// the classifier together: a run takes the first frame waiting, then every
// frame that follows within BatchWait (when two or more cameras share it)
// while their faces fit in MaxFaces, and publishes each frame's verdict in
// the order the frames came. A camera's frames come in order, so its
// verdicts stay in order.
func (p *Pipeline) infer(jobs <-chan *job) {
	batch := make([]*job, 0, len(p.cams)*jobsPerCamera)
	in := make([]float32, p.opts.MaxFaces*p.sample)
	pFake := make([]float32, p.opts.MaxFaces)
	wait := p.opts.BatchWait
	if len(p.cams) < 2 {
		wait = 0
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var next *job // taken, but did not fit in the last run
	for {
		j := next
		next = nil
		if j == nil {
			var ok bool
			if j, ok = <-jobs; !ok {
				return
			}
			j.st.Dequeued = time.Now()
		}
		batch = append(batch[:0], j)
		faces := j.n
		waiting := wait > 0 && faces > 0 && faces < p.opts.MaxFaces
		if waiting {
			timer.Reset(wait)
		}
		closed := false
	gather:
		for faces < p.opts.MaxFaces {
			var (
				more *job
				ok   bool
			)
			if waiting {
				select {
				case more, ok = <-jobs:
				case <-timer.C:
					waiting = false
					break gather
				}
			} else {
				select {
				case more, ok = <-jobs:
				default:
					break gather
				}
			}
			if !ok {
				closed = true
				break
			}
			more.st.Dequeued = time.Now()
			if faces+more.n > p.opts.MaxFaces {
				next = more
				break
			}
			batch = append(batch, more)
			faces += more.n
		}
		if waiting {
			timer.Stop()
		}
		p.inModel.Store(time.Now().UnixNano())
		p.classify(batch, faces, in, pFake)
		p.inModel.Store(0)
		if closed {
			return
		}
	}
}

// classify runs the faces of batch (faces in all) through the classifier in
// one run, using in and pFake when they come from more than one frame, and
// publishes each frame's verdict.
func (p *Pipeline) classify(batch []*job, faces int, in, pFake []float32) {
	var (
		head infer.HeadInfo
		err  error
	)
	if faces > 0 {
		var src *job // the one frame with faces, whose own buffers serve
		for _, j := range batch {
			if j.n > 0 {
				if src == nil {
					src = j
				} else {
					src = nil
					break
				}
			}
		}
		if src != nil {
			head, err = p.clf.Classify(src.input, src.n, src.pFake)
		} else {
			off := 0
			for _, j := range batch {
				copy(in[off*p.sample:], j.input[:j.n*p.sample])
				off += j.n
			}
			if head, err = p.clf.Classify(in, faces, pFake); err == nil {
				off = 0
				for _, j := range batch {
					copy(j.pFake, pFake[off:off+j.n])
					off += j.n
				}
			}
		}
	}
	done := time.Now()
	first := true
	for _, j := range batch {
		if j.end {
			p.finishTracks(j.cam)
			j.end = false
			j.cam.free <- j
			continue
		}
		j.st.Classified, j.st.Batch, j.st.FirstInRun = done, faces, first
		first = false
		j.st.Backbone, j.st.Head = head.Backbone, head.Head
		if j.n > 0 && err != nil {
			p.log.Error("inference failed; frame skipped", "camera", j.cam.name, "frame", j.frame, "faces in the run", faces, "err", err)
			j.cam.skipped.Add(1)
			j.cam.free <- j
			continue
		}
		p.publish(j, head)
	}
}

// publish makes j's verdict from its pFake, with the head that made it, and
// publishes it.
func (p *Pipeline) publish(j *job, head infer.HeadInfo) {
	backbone := p.clf.BackboneID()
	v := &j.result
	v.Frame, v.TS, v.Faces, v.PFake, v.Label = j.frame, j.ts, v.Faces[:0], 0, contract.LabelNone
	v.Seq = j.cam.analysed.Load() + 1 // only this goroutine adds to it
	v.Model.Backbone, v.Model.Head, v.Model.Precision = backbone, p.clf.HeadID(), p.clf.Precision()
	v.Threshold = p.threshold(p.clf.Threshold())
	if j.n > 0 {
		v.Model.Head, v.Threshold = head.ID, p.threshold(head.Threshold)
		for i := range j.n {
			pf := float64(j.pFake[i])
			v.Faces = append(v.Faces, contract.FaceResult{Box: contract.Box(j.boxes[i]), PFake: pf, Label: contract.Label(pf, v.Threshold)})
			v.PFake = max(v.PFake, pf)
		}
		v.Label = contract.Label(v.PFake, v.Threshold)
	}
	p.track(j, v)
	if c := p.opts.Events.Clips; c != nil {
		c.Frame(j.cam.name, j.frame, v.Faces)
	}
	// Before publishing, so that a label command for this frame finds its crops.
	if p.opts.Collector != nil {
		for i := range j.n {
			p.opts.Collector.Offer(collect.Face{Camera: j.cam.name, Frame: j.frame, Index: i, TS: j.ts, Run: p.opts.Run, Track: v.Faces[i].Track,
				Box: j.boxes[i], PFake: v.Faces[i].PFake, Threshold: v.Threshold,
				Backbone: backbone, Head: v.Model.Head, Input: j.input[i*p.sample : (i+1)*p.sample]})
		}
	}
	v.LatencyMS = float64(time.Since(j.ts).Microseconds()) / 1000
	// encoding/json rather than a hand-written encoder: Marshal costs one
	// allocation and about a microsecond more, next to some 110 allocations
	// and 30 µs that paho spends on each message (BenchmarkVerdictPayload). Scores are finite:
	// the classifier refuses non-finite logits.
	if p.opts.Verdicts {
		p.send(j.cam, j.cam.topic, v)
	}
	published := time.Now()
	j.cam.faceCount.Add(int64(j.n))
	j.cam.tally.verdict(v.Label)
	j.cam.lastVerdict.Store(published.UnixNano())
	j.cam.analysed.Add(1)
	if len(p.obs) > 0 {
		j.st.Published = published
		j.st.Camera, j.st.Frame, j.st.Faces = j.cam.name, j.frame, j.n
		for _, o := range p.obs {
			o.Observe(&j.st)
		}
	}
	j.cam.free <- j
}

// statuser is a source that says whether it is retrying (capture.Camera).
type statuser interface {
	Status() livestat.Status
}

// Stuck says what has hung, or "" when nothing has: a model run (with its
// publishes) or a camera's face detection taking longer than stall, or a
// camera inside Source.Next for longer than stall whose source has neither
// read a frame nor been waiting out a retry back-off in that time (a read or
// an open that does not return). A camera that is reconnecting, waiting for
// frames that come slowly, queued behind another camera's open, or has ended
// is not stuck. Safe from any
// goroutine; "" before Run.
func (p *Pipeline) Stuck(now time.Time, stall time.Duration) string {
	over := func(since int64) (time.Duration, bool) {
		if since == 0 {
			return 0, false
		}
		d := now.Sub(time.Unix(0, since))
		return d.Round(time.Second), d > stall
	}
	if d, ok := over(p.inModel.Load()); ok {
		return fmt.Sprintf("a model run has not returned for %v", d)
	}
	states := p.states.Load()
	if states == nil {
		return ""
	}
	for _, cs := range *states {
		if cs.ended.Load() {
			continue
		}
		if d, ok := over(cs.inDetect.Load()); ok {
			return fmt.Sprintf("camera %s: face detection has not returned for %v", cs.name, d)
		}
		d, ok := over(cs.inNext.Load())
		if !ok {
			continue
		}
		if s, has := cs.Source.(statuser); has {
			st := s.Status()
			if st.Retrying || st.Queued || now.Sub(st.Progress) <= stall {
				continue
			}
			return fmt.Sprintf("camera %s: no frame for %v and not retrying: a read or open has not returned", cs.name, now.Sub(st.Progress).Round(time.Second))
		}
		return fmt.Sprintf("camera %s: no frame for %v", cs.name, d)
	}
	return ""
}

// Analysed is every camera's frames published so far, in camera order; nil
// before Run. Safe from any goroutine.
func (p *Pipeline) Analysed() []livestat.CameraCount {
	states := p.states.Load()
	if states == nil {
		return nil
	}
	out := make([]livestat.CameraCount, len(*states))
	for i, cs := range *states {
		out[i] = livestat.CameraCount{Camera: cs.name, Frames: cs.analysed.Load(), Faces: cs.faceCount.Load(),
			Skipped: cs.skipped.Load(), Ended: cs.ended.Load()}
		out[i].Verdicts, out[i].Events = cs.tally.counts()
		if ns := cs.lastVerdict.Load(); ns != 0 {
			out[i].Last = time.Unix(0, ns)
		}
	}
	return out
}
