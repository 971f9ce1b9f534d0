// Package collect keeps the face crops the daemon is unsure about, so that the
// device owner can label them and retrain the head on the device: a Collector
// picks faces (p_fake in a band around the threshold, or every Nth face of a
// camera) and, from a background goroutine, encodes them to JPEG and writes
// them with a JSON sidecar, never blocking the pipeline, and rotates the folder
// under a file and byte cap. Label moves labelled crops into a data folder
// that `deepfaked train --data` reads.
package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/preprocess"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/internal/ratelog"
)

// DefaultQueue is the writer's queue when Options.Queue is 0: not a setting
// of the config, a bound on the memory held by crops waiting for the disk.
const DefaultQueue = 32

// Options configure a Collector; every field but Queue is explicit (the
// config's defaults are in daemon/config).
type Options struct {
	// Dir holds the crops: Dir/<camera>/<name>.jpg with <name>.json beside it.
	Dir string
	// Faces whose p_fake is in [BandLow, BandHigh] are saved; both 0: no band.
	BandLow, BandHigh float64
	// EveryN also saves every Nth face of each camera; 0: off.
	EveryN int
	// MaxFiles (at least 1) caps the number of crops kept; MaxBytes, when
	// above 0, caps their size on disk (JPEG and sidecar). The oldest crops
	// are removed first, at start-up too.
	MaxFiles int
	MaxBytes int64
	// JPEGQuality is 1..100.
	JPEGQuality int
	// Queue is how many crops may wait for the writer; 0: DefaultQueue.
	// When it is full further crops are dropped and counted, not waited for.
	Queue int
	// Mean, Std and ColorOrder (preprocess.RGB or BGR) undo the model input's
	// normalisation for Face.Input: the backbone's metadata.
	Mean, Std  [3]float32
	ColorOrder string
}

// Enabled reports whether any face would be selected.
func (o Options) Enabled() bool {
	return o.BandLow != 0 || o.BandHigh != 0 || o.EveryN > 0
}

func (o *Options) check() error {
	if o.Dir == "" {
		return errors.New("collect: no folder")
	}
	if math.IsNaN(o.BandLow) || math.IsNaN(o.BandHigh) || o.BandLow < 0 || o.BandHigh > 1 || o.BandLow > o.BandHigh {
		return fmt.Errorf("collect: band [%g, %g] must satisfy 0 <= low <= high <= 1", o.BandLow, o.BandHigh)
	}
	if o.EveryN < 0 {
		return fmt.Errorf("collect: every_n %d is negative", o.EveryN)
	}
	if o.MaxFiles < 1 || o.MaxBytes < 0 {
		return fmt.Errorf("collect: max_files %d must be at least 1, max_bytes %d not negative", o.MaxFiles, o.MaxBytes)
	}
	if o.JPEGQuality < 1 || o.JPEGQuality > 100 {
		return fmt.Errorf("collect: jpeg_quality %d out of range 1..100", o.JPEGQuality)
	}
	if o.Queue < 0 {
		return fmt.Errorf("collect: queue %d is negative", o.Queue)
	}
	for c := range 3 {
		if !(o.Std[c] > 0) {
			return fmt.Errorf("collect: std %v: every channel must be > 0", o.Std)
		}
	}
	if err := preprocess.CheckColorOrder(o.ColorOrder); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	if o.Queue == 0 {
		o.Queue = DefaultQueue
	}
	return nil
}

// Face is one classified face offered to the collector.
type Face struct {
	Camera string
	Frame  int64
	// Index is the face's position in the frame's verdict (faces[]).
	Index     int
	TS        time.Time
	Box       image.Rectangle
	PFake     float64
	Threshold float64
	Backbone  string
	Head      string
	// Run and Track name the face's track (the verdict's run and the face's
	// track), which groups its crops for training.
	Run   string
	Track int64
	// The pixels, one of the two. Crop, when not empty, is a BGR 8-bit image
	// of the face. Otherwise (Crop zero or empty) Input is the face's model input (3×S×S, NCHW RGB
	// normalised with Options.Mean/Std), turned back into an S×S image: what
	// the model saw. Offer copies them before it returns, so the caller may
	// reuse either at once.
	Crop  gocv.Mat
	Input []float32
}

// Stats count what the collector did since New.
type Stats struct {
	Saved   uint64 // crops written
	Dropped uint64 // chosen but the writer's queue was full
	Failed  uint64 // chosen but not encoded or not written (logged)
	Removed uint64 // removed by rotation
}

// Collector saves chosen faces. Offer, Label and Stats are safe for
// concurrent use.
type Collector struct {
	opts Options
	log  *slog.Logger
	// failLog limits the failure warnings (see fail).
	failLog *ratelog.Limiter
	params  []int

	mu     sync.Mutex // guards the fields below and sends on items
	closed bool
	seen   map[string]uint64 // faces offered per camera
	// held are crops someone is reviewing (Hold): rotation passes over
	// them until the time given.
	held map[string]time.Time

	// Queue slots hold copies of offered pixels until the writer has encoded
	// them; a crop without a free slot is dropped.
	free   chan *slot
	items  chan item
	labels chan labelReq
	done   chan struct{}

	saved, dropped, failed, removed atomic.Uint64

	// Owned by the writer goroutine.
	img   gocv.Mat // Input decoded, reused
	index []entry  // oldest first
	files int
	bytes int64
	dirs  map[string]bool
}

type slot struct {
	crop      gocv.Mat
	input     []float32
	fromInput bool // input holds the pixels, not crop
}

type item struct {
	dir, name string // camera folder, file name without extension
	px        *slot
	meta      Meta
}

type entry struct {
	jpeg  string
	bytes int64
}

type labelReq struct {
	datasetDir, camera, label string
	frame                     int64
	reply                     chan labelResult
}

type labelResult struct {
	paths []string
	err   error
}

// New makes the folder, applies the caps to the crops already there and starts
// the writer. Close stops it.
func New(opts Options, log *slog.Logger) (*Collector, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	c := &Collector{opts: opts, log: log, failLog: ratelog.New(time.Minute), params: []int{gocv.IMWriteJpegQuality, opts.JPEGQuality},
		seen: map[string]uint64{}, free: make(chan *slot, opts.Queue),
		items: make(chan item, opts.Queue), labels: make(chan labelReq), done: make(chan struct{}),
		dirs: map[string]bool{}}
	if err := c.scan(); err != nil {
		return nil, err
	}
	c.evict()
	c.img = gocv.NewMat()
	for range opts.Queue {
		c.free <- &slot{crop: gocv.NewMat()}
	}
	go c.write()
	return c, nil
}

// Offer saves f if it is chosen: p_fake in the band, or the camera's Nth face.
// It reports whether f was queued for writing. It never waits for the disk:
// when the writer is behind, the crop is dropped and counted.
func (c *Collector) Offer(f Face) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || !c.opts.Enabled() {
		return false
	}
	n := c.seen[f.Camera] + 1
	c.seen[f.Camera] = n
	reason := ""
	switch {
	case (c.opts.BandLow != 0 || c.opts.BandHigh != 0) && f.PFake >= c.opts.BandLow && f.PFake <= c.opts.BandHigh:
		reason = ReasonBand
	case c.opts.EveryN > 0 && n%uint64(c.opts.EveryN) == 0:
		reason = ReasonEveryN
	default:
		return false
	}
	var px *slot
	select {
	case px = <-c.free:
	default: // the writer is behind
		c.dropped.Add(1)
		return false
	}
	if err := px.fill(f); err != nil {
		c.free <- px
		c.fail("face not saved", fmt.Errorf("camera %q frame %d face %d: %w", f.Camera, f.Frame, f.Index, err))
		return false
	}
	ts := f.TS
	if ts.IsZero() {
		ts = time.Now()
	}
	// Never blocks: there are no more items than slots.
	c.items <- item{dir: filepath.Join(c.opts.Dir, f.Camera), name: fileName(f.Frame, ts, f.Index), px: px,
		meta: Meta{Camera: f.Camera, Frame: f.Frame, Face: f.Index, TS: ts.UTC(),
			Box:   [4]int{f.Box.Min.X, f.Box.Min.Y, f.Box.Dx(), f.Box.Dy()},
			PFake: f.PFake, Threshold: f.Threshold, Model: Model{Backbone: f.Backbone, Head: f.Head}, Reason: reason,
			Run: f.Run, Track: f.Track}}
	return true
}

// fill copies f's pixels, checked.
func (s *slot) fill(f Face) error {
	switch {
	case !contract.ValidName(f.Camera) || f.Frame < 0 || f.Index < 0:
		return errors.New("camera must be [A-Za-z0-9_-]+, frame and face >= 0")
	case f.Crop.Ptr() != nil && !f.Crop.Empty(): // a zero Mat has no C object to ask
		if f.Crop.Type() != gocv.MatTypeCV8UC3 {
			return fmt.Errorf("crop type %v, want 8-bit 3-channel BGR", f.Crop.Type())
		}
		f.Crop.CopyTo(&s.crop)
		s.fromInput = false
	default:
		if _, err := preprocess.InputSize(f.Input); err != nil {
			return err
		}
		s.input = append(s.input[:0], f.Input...)
		s.fromInput = true
	}
	return nil
}

// encode runs on the writer goroutine and gives the slot back.
func (c *Collector) encode(px *slot) ([]byte, error) {
	defer func() { c.free <- px }()
	img := px.crop
	if px.fromInput {
		if err := preprocess.Decode(px.input, c.opts.Mean, c.opts.Std, c.opts.ColorOrder, &c.img); err != nil {
			return nil, err
		}
		img = c.img
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, img, c.params)
	if err != nil {
		return nil, fmt.Errorf("jpeg: %w", err)
	}
	defer buf.Close()
	if buf.Len() == 0 {
		return nil, fmt.Errorf("jpeg: OpenCV encoded nothing for a %dx%d crop", img.Cols(), img.Rows())
	}
	return bytes.Clone(buf.GetBytes()), nil
}

// fail counts a failure and logs it, at most one line a minute: a full disk
// fails every crop, and the log must not fill it further.
func (c *Collector) fail(msg string, err error) {
	c.failed.Add(1)
	if ok, left := c.failLog.Allow(time.Now()); ok {
		c.log.Warn("collect: "+msg, "err", err, "not_logged_since_last", left, "failed_total", c.failed.Load())
	}
}

// Stats returns the counters.
func (c *Collector) Stats() Stats {
	return Stats{Saved: c.saved.Load(), Dropped: c.dropped.Load(), Failed: c.failed.Load(), Removed: c.removed.Load()}
}

// Label labels the crops of camera's frame like Folders.Label, after the
// crops offered before the call have been written, and forgets them in the
// rotation.
func (c *Collector) Label(ctx context.Context, datasetDir, camera string, frame int64, label string) ([]string, error) {
	return c.request(ctx, labelReq{datasetDir: datasetDir, camera: camera, frame: frame, label: label})
}

func (c *Collector) request(ctx context.Context, r labelReq) ([]string, error) {
	r.reply = make(chan labelResult, 1)
	select {
	case c.labels <- r:
	case <-c.done:
		return nil, errors.New("collect: collector is closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.reply:
		return res.paths, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close writes the crops still queued and stops the writer. Offer returns
// false afterwards.
func (c *Collector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	close(c.items)
	c.mu.Unlock()
	<-c.done
	return nil
}

// write runs until items is closed and drained. A label request first writes
// what is queued, so a crop offered before it can be labelled.
func (c *Collector) write() {
	defer func() {
		for range c.opts.Queue { // every slot is back once items are drained
			(<-c.free).crop.Close()
		}
		c.img.Close()
		close(c.done)
	}()
	for {
		select {
		case it, ok := <-c.items:
			if !ok {
				return
			}
			c.save(it)
		case r := <-c.labels:
			c.drain()
			r.reply <- c.label(r)
		}
	}
}

func (c *Collector) drain() {
	for {
		select {
		case it, ok := <-c.items:
			if !ok {
				return
			}
			c.save(it)
		default:
			return
		}
	}
}

func (c *Collector) label(r labelReq) labelResult {
	moved, paths, err := labelFrame(c.opts.Dir, r.datasetDir, r.camera, r.frame, r.label)
	if len(moved) > 0 {
		c.index = slices.DeleteFunc(c.index, func(e entry) bool {
			if slices.Contains(moved, e.jpeg) {
				c.files--
				c.bytes -= e.bytes
				return true
			}
			return false
		})
	}
	return labelResult{paths: paths, err: err}
}

// save writes the sidecar and then the JPEG, each atomically: a JPEG in the
// folder always has its sidecar.
func (c *Collector) save(it item) {
	jpeg, err := c.encode(it.px) // first: it gives the slot back
	if err != nil {
		c.fail("crop not saved", fmt.Errorf("camera %s frame %d face %d: %w", it.meta.Camera, it.meta.Frame, it.meta.Face, err))
		return
	}
	if !c.dirs[it.dir] {
		if err := os.MkdirAll(it.dir, 0o750); err != nil {
			c.fail("crop not written", err)
			return
		}
		c.dirs[it.dir] = true
	}
	side, err := it.meta.marshal()
	if err != nil {
		c.fail("crop not written", err)
		return
	}
	base := filepath.Join(it.dir, it.name)
	if err := atomicfile.WriteWith(base+".json", side, fileOptions(false)); err != nil {
		c.dirs[it.dir] = false // made again next time, should someone have removed it
		c.fail("crop not written", err)
		return
	}
	if err := atomicfile.WriteWith(base+".jpg", jpeg, fileOptions(false)); err != nil {
		os.Remove(base + ".json")
		c.fail("crop not written", err)
		return
	}
	c.saved.Add(1)
	c.index = append(c.index, entry{jpeg: base + ".jpg", bytes: int64(len(side) + len(jpeg))})
	c.files++
	c.bytes += int64(len(side) + len(jpeg))
	c.evict()
}

// Hold keeps the crops at paths (JPEG files of the collect folder) out of
// rotation until until: the review page holds the crops it shows, so that
// none is gone when its labeller gets to it. A crop labelled meanwhile
// leaves the folder as usual.
func (c *Collector) Hold(paths []string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = map[string]time.Time{}
	}
	now := time.Now()
	for p, t := range c.held {
		if now.After(t) {
			delete(c.held, p)
		}
	}
	for _, p := range paths {
		c.held[p] = until
	}
}

// isHeld reports whether a crop is held now.
func (c *Collector) isHeld(jpeg string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.held[jpeg]
	return ok && now.Before(t)
}

// evict removes the oldest crops that are not held while a cap is
// exceeded. Crops labelled by another process are already gone: removing
// them only corrects the count.
func (c *Collector) evict() {
	now := time.Now()
	kept := c.index[:0]
	n := 0
	for n < len(c.index) && (c.files > c.opts.MaxFiles || (c.opts.MaxBytes > 0 && c.bytes > c.opts.MaxBytes)) {
		e := c.index[n]
		n++
		if c.isHeld(e.jpeg, now) {
			kept = append(kept, e)
			continue
		}
		c.files--
		c.bytes -= e.bytes
		err := os.Remove(e.jpeg)
		if err == nil {
			c.removed.Add(1)
		}
		if err2 := os.Remove(sidecar(e.jpeg)); err == nil && err2 != nil && !errors.Is(err2, os.ErrNotExist) {
			err = err2
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("collect: rotation", "file", e.jpeg, "err", err)
		}
	}
	// The held ones stay in order ahead of the rest.
	c.index = append(kept, c.index[n:]...)
}

// scan indexes the crops already in the folder, oldest first, and removes
// what an interrupted run left: temporary files and sidecars without a JPEG.
func (c *Collector) scan() error {
	cams, err := os.ReadDir(c.opts.Dir)
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	type found struct {
		entry
		mod time.Time
	}
	var all []found
	for _, cam := range cams {
		if !cam.IsDir() || !contract.ValidName(cam.Name()) {
			continue
		}
		dir := filepath.Join(c.opts.Dir, cam.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("collect: %w", err)
		}
		for _, f := range files {
			p := filepath.Join(dir, f.Name())
			switch {
			case atomicfile.IsTemp(f.Name()):
				os.Remove(p)
			case strings.HasSuffix(f.Name(), ".json"):
				if _, err := os.Stat(strings.TrimSuffix(p, ".json") + ".jpg"); errors.Is(err, os.ErrNotExist) {
					os.Remove(p)
				}
			case strings.HasSuffix(f.Name(), ".jpg"):
				if _, _, _, ok := parseName(f.Name()); !ok {
					continue
				}
				st, err := f.Info()
				if err != nil {
					continue // labelled meanwhile
				}
				size := st.Size()
				if side, err := os.Stat(sidecar(p)); err == nil {
					size += side.Size()
				}
				all = append(all, found{entry{jpeg: p, bytes: size}, st.ModTime()})
			}
		}
	}
	slices.SortFunc(all, func(a, b found) int {
		if d := a.mod.Compare(b.mod); d != 0 {
			return d
		}
		return strings.Compare(a.jpeg, b.jpeg)
	})
	for _, f := range all {
		c.index = append(c.index, f.entry)
		c.files++
		c.bytes += f.bytes
	}
	return nil
}
