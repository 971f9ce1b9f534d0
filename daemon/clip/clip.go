// Package clip records short videos of what a camera saw around an event,
// the thing NVR users ask for most. Each camera's recent analysed frames
// wait in a ring, scaled down and JPEG-encoded, with their verdict's faces;
// when a track turns fake (or, with All, appears) the ring's last Pre
// becomes the start of a clip, the next Post of frames its end, and a writer
// goroutine of its own decodes them, draws the faces' boxes and writes an
// MP4 (H.264), atomically (<dir>/<camera>/<run>-<track>.mp4), keeping all
// clips within an age and a size.
//
// The cost on the live path is one scale and one JPEG encoding per analysed
// frame, on the camera's goroutine, and a copy of the encoding and the faces
// on the inference goroutine; buffers are reused.
package clip

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/annotate"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/internal/ratelog"
	"github.com/deepfaked/deepfaked/internal/retain"
)

// Options configure a Recorder. Every field is taken as given.
type Options struct {
	Dir       string
	Run       string        // the daemon's run id: clips are named like snapshots
	Pre, Post time.Duration // before and after the moment the clip is for
	All       bool          // a clip for every new track, not only for a track turning fake
	Boxes     bool          // draw the faces
	MaxWidth  int           // wider frames are scaled down before they wait
	// FPS bounds the frames kept a second (0: every analysed frame): a
	// camera analysed at 25 frames/s costs a clip 2.5 times the encoding
	// of one kept at 10, for little a viewer sees.
	FPS      float64
	MaxAge   time.Duration // 0: no age bound
	MaxBytes int64
	Log      *slog.Logger // nil discards
}

// jpegQuality of the waiting frames: the clip is encoded again from them.
const jpegQuality = 80

// maxFrames bounds a camera's ring and a clip's frames, whatever the frame
// rate (a file analysed at every frame runs far faster than real time).
const maxFrames = 1500

// frame is one analysed frame waiting in a ring or a clip.
type frame struct {
	index int64
	ts    time.Time
	jpeg  []byte
	faces []contract.FaceResult
	scale float64 // boxes are in the full frame; the JPEG is scaled by this
}

// camera is one camera's ring and the clips it is filling.
type camera struct {
	name    string
	mu      sync.Mutex
	ring    []*frame // oldest first, within Pre of the newest
	free    []*frame // frames out of the ring, for reuse: no allocation per frame
	open    []*job   // clips still taking frames
	started map[int64]string
	pending *frame    // encoded on the camera goroutine, awaiting its verdict
	lastAt  time.Time // the last frame kept, for FPS
}

// job is one clip being filled or written.
type job struct {
	camera, path string
	end          time.Time
	frames       []frame
}

// Recorder buffers the cameras' frames and writes clips; Close writes the
// clips still open and stops the writer.
type Recorder struct {
	opts    Options
	log     *slog.Logger
	cams    map[string]*camera // fixed at New
	jobs    chan *job
	done    chan struct{}
	mu      sync.Mutex
	closed  bool
	failLog *ratelog.Limiter
}

// New makes the folder, prunes it and starts the writer.
func New(opts Options, cameras []string) (*Recorder, error) {
	switch {
	case opts.Dir == "":
		return nil, errors.New("clip: no folder")
	case opts.Pre < 0 || opts.Post < 0 || opts.Pre+opts.Post <= 0:
		return nil, fmt.Errorf("clip: pre %s and post %s: want >= 0, not both 0", opts.Pre, opts.Post)
	case opts.MaxWidth < 1 || opts.MaxBytes < 1 || opts.MaxAge < 0:
		return nil, fmt.Errorf("clip: max width %d, max bytes %d, max age %s: want > 0, > 0, >= 0", opts.MaxWidth, opts.MaxBytes, opts.MaxAge)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := atomicfile.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	r := &Recorder{opts: opts, log: log, cams: map[string]*camera{}, jobs: make(chan *job, 16), done: make(chan struct{}),
		failLog: ratelog.New(time.Minute)}
	for _, c := range cameras {
		r.cams[c] = &camera{name: c, started: map[int64]string{}}
	}
	if err := r.prune(time.Now()); err != nil {
		return nil, err
	}
	go r.write()
	return r, nil
}

// Path is where the clip of a camera's track in this run goes.
func (r *Recorder) Path(camera string, track int64) string {
	return filepath.Join(r.opts.Dir, camera, contract.ClipName(r.opts.Run, track))
}

// Encode scales m down to MaxWidth and JPEG-encodes it into the camera's
// next frame, to wait for its verdict (Frame). It runs on the camera's
// goroutine, before the frame's Mat is released.
func (r *Recorder) Encode(cameraName string, index int64, ts time.Time, m gocv.Mat) error {
	c := r.cams[cameraName]
	if c == nil || m.Empty() {
		return nil
	}
	if r.opts.FPS > 0 {
		c.mu.Lock()
		skip := !c.lastAt.IsZero() && ts.Sub(c.lastAt) < time.Duration(float64(time.Second)/r.opts.FPS) && ts.After(c.lastAt)
		if !skip {
			c.lastAt = ts
		}
		c.mu.Unlock()
		if skip {
			return nil
		}
	}
	scale := 1.0
	src := m
	if m.Cols() > r.opts.MaxWidth {
		scale = float64(r.opts.MaxWidth) / float64(m.Cols())
		small := gocv.NewMat()
		defer small.Close()
		gocv.Resize(m, &small, image.Pt(r.opts.MaxWidth, int(float64(m.Rows())*scale+0.5)), 0, 0, gocv.InterpolationArea)
		src = small
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, jpegQuality})
	if err != nil {
		return fmt.Errorf("clip: camera %s: jpeg: %w", cameraName, err)
	}
	defer buf.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.reuse()
	f.index, f.ts, f.scale = index, ts, scale
	f.jpeg = append(f.jpeg[:0], buf.GetBytes()...)
	f.faces = f.faces[:0]
	c.pending = f
	return nil
}

// reuse is a frame to fill: the pending one when it never got its verdict
// (skipped), else one that left the ring, else a new one.
func (c *camera) reuse() *frame {
	switch {
	case c.pending != nil:
		return c.pending
	case len(c.free) > 0:
		f := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		return f
	}
	return &frame{}
}

// Frame adds the published frame index of the camera, with its verdict's
// faces, to the ring and to the clips still taking frames; a clip whose end
// it passes goes to the writer. It runs on the inference goroutine.
func (r *Recorder) Frame(cameraName string, index int64, faces []contract.FaceResult) {
	c := r.cams[cameraName]
	if c == nil {
		return
	}
	c.mu.Lock()
	f := c.pending
	if f == nil || f.index != index {
		c.mu.Unlock()
		return
	}
	c.pending = nil
	f.faces = append(f.faces, faces...)
	var done []*job
	for _, j := range c.open {
		if f.ts.After(j.end) || len(j.frames) >= maxFrames {
			done = append(done, j)
			continue
		}
		j.frames = append(j.frames, copyFrame(f))
	}
	c.open = slices.DeleteFunc(c.open, func(j *job) bool { return slices.Contains(done, j) })
	c.ring = append(c.ring, f)
	cut := 0
	for cut < len(c.ring) && (f.ts.Sub(c.ring[cut].ts) > r.opts.Pre || len(c.ring)-cut > maxFrames) {
		cut++
	}
	c.free = append(c.free, c.ring[:cut]...)
	c.ring = append(c.ring[:0], c.ring[cut:]...)
	c.mu.Unlock()
	for _, j := range done {
		r.send(j)
	}
}

func copyFrame(f *frame) frame {
	return frame{index: f.index, ts: f.ts, scale: f.scale, jpeg: slices.Clone(f.jpeg), faces: slices.Clone(f.faces)}
}

// Clip names the clip of ev's track: it starts one, from the ring's frames
// within Pre of the event, when the event is the track turning fake (or,
// with All, appearing), and returns the path of one started before. "" when
// there is none.
func (r *Recorder) Clip(ev contract.Event) string {
	c := r.cams[ev.Camera]
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.started[ev.After.Track]; ok {
		if ev.Type == contract.EventEnd {
			delete(c.started, ev.After.Track)
		}
		return p
	}
	turned := ev.After.State == contract.TrackFake && (ev.Before == nil || ev.Before.State != contract.TrackFake)
	if !(turned || r.opts.All && ev.Type == contract.EventNew) || ev.Type == contract.EventEnd {
		return ""
	}
	// A clip still taking frames covers this moment already: the track
	// shares it (a busy scene makes one clip, not one per face), and it
	// runs Post past this moment too.
	for _, j := range c.open {
		if !ev.TS.After(j.end) {
			if end := ev.TS.Add(r.opts.Post); end.After(j.end) {
				j.end = end
			}
			c.started[ev.After.Track] = j.path
			return j.path
		}
	}
	p := r.Path(ev.Camera, ev.After.Track)
	j := &job{camera: ev.Camera, path: p, end: ev.TS.Add(r.opts.Post)}
	for _, f := range c.ring {
		if ev.TS.Sub(f.ts) <= r.opts.Pre {
			j.frames = append(j.frames, copyFrame(f))
		}
	}
	c.started[ev.After.Track] = p
	if r.opts.Post == 0 {
		go r.send(j)
	} else {
		c.open = append(c.open, j)
	}
	return p
}

// send hands a filled clip to the writer, or drops it (counted in the log)
// when the writer is behind or closed.
func (r *Recorder) send(j *job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	select {
	case r.jobs <- j:
	default:
		r.failLog.Log(r.log, slog.LevelWarn, time.Now(), "clip dropped: the writer is behind", "camera", j.camera, "file", j.path)
	}
}

// Close writes the clips still taking frames, with what they have, and
// stops the writer once it has written them.
func (r *Recorder) Close() {
	var open []*job
	for _, c := range r.cams {
		c.mu.Lock()
		open = append(open, c.open...)
		c.open = nil
		c.mu.Unlock()
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	go func() { // the writer is the only reader; these may outnumber the queue
		for _, j := range open {
			r.jobs <- j
		}
		close(r.jobs)
	}()
	<-r.done
}

func (r *Recorder) write() {
	defer close(r.done)
	for j := range r.jobs {
		if err := r.writeClip(j); err != nil {
			r.failLog.Log(r.log, slog.LevelWarn, time.Now(), "clip not saved", "camera", j.camera, "file", j.path, "err", err)
			continue
		}
		r.log.Info("clip saved", "camera", j.camera, "file", j.path, "frames", len(j.frames))
		if err := r.prune(time.Now()); err != nil {
			r.failLog.Log(r.log, slog.LevelWarn, time.Now(), "clips not pruned", "err", err)
		}
	}
}

// writeClip decodes j's frames, draws their faces and writes them as an
// H.264 MP4 at their own pace, to a temporary file renamed over path.
func (r *Recorder) writeClip(j *job) error {
	if len(j.frames) == 0 {
		return errors.New("no frames")
	}
	if err := atomicfile.MkdirAll(filepath.Dir(j.path), 0o750); err != nil {
		return err
	}
	first, err := gocv.IMDecode(j.frames[0].jpeg, gocv.IMReadColor)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	size := image.Pt(first.Cols(), first.Rows())
	first.Close()
	tmp := filepath.Join(filepath.Dir(j.path), "."+filepath.Base(j.path)+".tmp.mp4")
	w, err := gocv.VideoWriterFile(tmp, "avc1", fps(j.frames), size.X, size.Y, true)
	if err != nil || !w.IsOpened() {
		if w != nil {
			w.Close()
		}
		return fmt.Errorf("open an H.264 writer for %s: %v", tmp, err)
	}
	for i := range j.frames {
		if err := r.writeFrame(w, &j.frames[i], size); err != nil {
			w.Close()
			os.Remove(tmp)
			return err
		}
	}
	if err := w.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.Rename(tmp, j.path)
}

// writeFrame decodes f, fits it to size (a camera may change resolution),
// draws its faces and writes it.
func (r *Recorder) writeFrame(w *gocv.VideoWriter, f *frame, size image.Point) error {
	img, err := gocv.IMDecode(f.jpeg, gocv.IMReadColor)
	if err != nil {
		return fmt.Errorf("decode frame %d: %w", f.index, err)
	}
	defer img.Close()
	if img.Cols() != size.X || img.Rows() != size.Y {
		gocv.Resize(img, &img, size, 0, 0, gocv.InterpolationArea)
	}
	if r.opts.Boxes {
		annotate.Faces(&img, f.faces, f.scale)
	}
	if err := w.Write(img); err != nil {
		return fmt.Errorf("write frame %d: %w", f.index, err)
	}
	return nil
}

// fps is the clip's frame rate: its frames' own pace, so that it plays in
// real time.
func fps(frames []frame) float64 {
	if len(frames) < 2 {
		return 1
	}
	span := frames[len(frames)-1].ts.Sub(frames[0].ts).Seconds()
	if span <= 0 {
		return 25
	}
	return min(max(float64(len(frames)-1)/span, 1), 60)
}

// prune removes what an interrupted write left, clips older than MaxAge and
// the oldest beyond MaxBytes in all. The writer goroutine calls it after a
// write (and New before it starts): no write is under way.
func (r *Recorder) prune(now time.Time) error {
	if err := retain.Prune(r.opts.Dir, ".mp4", now, retain.Bounds{MaxBytes: r.opts.MaxBytes, MaxAge: r.opts.MaxAge}); err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	return nil
}
