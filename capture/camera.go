// Package capture opens a camera source (V4L2 device, video file, network
// stream or GStreamer pipeline; parsed by package source) and hands out frames
// to analyse: every frame or a time-sampled subset for files, the latest frame
// for live sources.
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/gst"
	"github.com/deepfaked/deepfaked/capture/source"
	"github.com/deepfaked/deepfaked/daemon/livestat"
)

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("camera closed")

// Options configure a Camera.
type Options struct {
	Name   string
	Source string
	// FPS is the most frames per second to analyse; 0 means every frame of a
	// file, or every new frame of a live source.
	FPS float64
	// Loop rewinds a file at its end instead of returning io.EOF.
	Loop bool
	// Width and Height request a device resolution (0: the device default);
	// through GStreamer they scale every source's frames in the pipeline.
	Width, Height int
	// Decoder decodes the source: gst.FFmpeg (also ""), gst.Auto,
	// gst.Software or a hardware decoder's element (see package gst).
	Decoder string
	// DecoderThreads bounds GStreamer's software decoder's threads; 0 is
	// one per core.
	DecoderThreads int
	// IOTimeout bounds an RTSP camera's reads through GStreamer (FFmpeg's
	// come from SetFFmpegEnv).
	IOTimeout time.Duration
	// Registry is GStreamer's registry, asked for hardware decoders and
	// plugins; needed unless Decoder is gst.FFmpeg.
	Registry gst.Probe
}

// Frame is one captured image. Give it back with Camera.Release.
type Frame struct {
	Mat gocv.Mat
	// Index is the frame's position in the stream from 0; skipped frames count.
	Index int64
	// Time is when the frame was read.
	Time time.Time
}

// Back-off between attempts to open a source that failed to open or to read,
// live or file: capped, exponential, with jitter (see backoff).
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// backoff spaces retries out. Each wait is drawn from the upper half of the
// current step, so cameras that failed together (a switch rebooted) do not
// retry in step.
type backoff struct{ step time.Duration }

func (b *backoff) reset() { b.step = 0 }

func (b *backoff) next() time.Duration {
	b.step = min(max(2*b.step, minBackoff), maxBackoff)
	return b.step/2 + rand.N(b.step/2+1)
}

// ffmpegOpens mirrors the process-wide lock OpenCV (4.6) holds around a
// whole FFmpeg open, network connect included: one source opens at a time,
// so a stream that takes io_timeout to fail holds up every other camera's
// open, a looping file's reopen too. Taking it in Go first lets a camera say
// it is queued (Status.Queued) rather than look hung, and Go's mutex hands
// over in turn where OpenCV's pthread mutex promises no order. It is global
// because the lock it mirrors is.
var ffmpegOpens sync.Mutex

// ErrMissingPlugin is a camera's GStreamer pipeline needing an element that
// GStreamer does not have: retrying does not help, installing its package does.
var ErrMissingPlugin = errors.New("GStreamer lacks")

// poolCap bounds the idle frames kept for reuse; more are made when the
// consumer holds many, and the extras are closed on Release.
const poolCap = 4

// Camera reads frames from one source. Next is meant for one goroutine;
// Release may be called from any.
type Camera struct {
	opts Options
	src  source.Source
	log  *slog.Logger

	mu     sync.Mutex
	pool   []*Frame
	closed bool

	// retry is owned by the goroutine that opens and reads: Next's for a
	// file, the grabber's for a live source.
	retry backoff
	// Health (Status), written by that goroutine, read from any.
	retrying   atomic.Bool
	queued     atomic.Bool  // waiting for another camera's FFmpeg open (ffmpegOpens)
	delivering atomic.Bool  // the last read gave a frame
	progress   atomic.Int64 // unix ns: the last frame read, or an attempt's end or start
	frames     atomic.Int64 // frames read
	dropped    atomic.Int64 // live frames replaced by a newer one before Next took them

	// File mode: state owned by the goroutine calling Next.
	vc       *gocv.VideoCapture // nil until the file opens
	pos      int64              // stream index of the next frame the capture will return
	want     float64            // stream index of the next frame to analyse (sampling)
	step     float64            // frames between samples
	loopBase int64              // stream index of the file's first frame in this loop

	// plan is how the source is decoded, once decided (its codec probed).
	plan atomic.Pointer[gst.Plan]

	// Live mode.
	slot    *Frame        // the latest frame, guarded by mu
	ready   chan struct{} // signalled when slot fills
	stop    context.CancelFunc
	done    chan struct{} // closed when the grabber exits
	liveErr error         // why the grabber stopped, guarded by mu
	nextAt  time.Time     // earliest time Next may hand out a frame (FPS pacing)
}

// Open parses opts.Source and starts the camera. Only a bad option or source
// is an error: a source that does not open (a missing or unreadable file, an
// absent device, a stream that refuses or never answers) is retried with
// back-off, logged, and never holds up the caller or other cameras. A live
// source gets a grabber goroutine that opens and reads it until ctx is
// cancelled or Close is called; a file is opened here and, if that fails, by
// Next.
func Open(ctx context.Context, opts Options, log *slog.Logger) (*Camera, error) {
	if log == nil {
		log = slog.Default()
	}
	if opts.FPS < 0 || math.IsNaN(opts.FPS) || math.IsInf(opts.FPS, 0) {
		return nil, fmt.Errorf("camera %q: fps %v must be a finite number >= 0", opts.Name, opts.FPS)
	}
	if opts.Width < 0 || opts.Height < 0 {
		return nil, fmt.Errorf("camera %q: width/height %dx%d must not be negative", opts.Name, opts.Width, opts.Height)
	}
	src, err := source.Parse(opts.Source)
	if err != nil {
		return nil, fmt.Errorf("camera %q: %w", opts.Name, err)
	}
	if err := checkDecoder(opts, src); err != nil {
		return nil, err
	}
	c := &Camera{opts: opts, src: src, log: log.With("camera", opts.Name, "source", src.String())}
	c.progressed()
	if !src.Live() {
		if vc, err := c.openCapture(); err != nil {
			c.log.Warn("camera open failed; retrying when frames are asked for", "err", err)
		} else {
			c.adopt(vc)
		}
		return c, nil
	}
	gctx, stop := context.WithCancel(ctx)
	c.stop, c.ready, c.done = stop, make(chan struct{}, 1), make(chan struct{})
	go c.grab(gctx)
	return c, nil
}

// checkDecoder refuses a decoder that cannot take the source, or that needs
// GStreamer's registry without one.
func checkDecoder(opts Options, src source.Source) error {
	if err := gst.Check(src, opts.Decoder); err != nil {
		return fmt.Errorf("camera %q: %w", opts.Name, err)
	}
	if opts.Registry == nil && opts.Decoder != gst.FFmpeg && opts.Decoder != "" {
		return fmt.Errorf("camera %q: decoder %s needs GStreamer's registry (Options.Registry)", opts.Name, opts.Decoder)
	}
	return nil
}

// adopt makes vc the file's capture and sets the sampling step from its frame rate.
func (c *Camera) adopt(vc *gocv.VideoCapture) {
	c.vc = vc
	c.step = 1
	if c.opts.FPS > 0 {
		if srcFPS := vc.Get(gocv.VideoCaptureFPS); srcFPS > 0 && !math.IsNaN(srcFPS) && srcFPS > c.opts.FPS {
			c.step = srcFPS / c.opts.FPS
		}
	}
}

// reopenFile opens the file, waiting with back-off between attempts, until
// it opens or ctx is done.
func (c *Camera) reopenFile(ctx context.Context) error {
	for {
		vc, err := c.openCapture()
		if err == nil {
			c.adopt(vc)
			return nil
		}
		if err := c.retryAfter(ctx, "camera open failed; retrying", err); err != nil {
			return err
		}
	}
}

// retryAfter logs why and waits the next back-off, as Status says; it
// returns ctx's error if ctx ends first.
func (c *Camera) retryAfter(ctx context.Context, msg string, why error) error {
	d := c.retry.next()
	c.log.Warn(msg, "err", why, "retry_in", d.Round(time.Millisecond))
	c.delivering.Store(false)
	c.retrying.Store(true)
	c.progressed()
	ok := sleep(ctx, d)
	c.retrying.Store(false)
	c.progressed()
	if !ok {
		return ctx.Err()
	}
	return nil
}

func (c *Camera) progressed() { c.progress.Store(time.Now().UnixNano()) }

// gotFrame notes a frame read, for Status.
func (c *Camera) gotFrame() {
	c.frames.Add(1)
	c.delivering.Store(true)
	c.progressed()
}

// Status is safe to call from any goroutine.
func (c *Camera) Status() livestat.Status {
	return livestat.Status{Retrying: c.retrying.Load(), Queued: c.queued.Load(), Progress: time.Unix(0, c.progress.Load()),
		Delivering: c.delivering.Load(), Frames: c.frames.Load(), Dropped: c.dropped.Load(), Decoder: c.Decoder()}
}

// Name is the camera's configured name.
func (c *Camera) Name() string { return c.opts.Name }

// Source is the parsed source.
func (c *Camera) Source() source.Source { return c.src }

func (c *Camera) openCapture() (*gocv.VideoCapture, error) {
	plan, err := c.decoding()
	if err != nil {
		return nil, fmt.Errorf("camera %q: %w", c.opts.Name, err)
	}
	if plan.Pipeline != "" && c.src.Kind != source.GStreamer {
		missing, err := plan.Missing(c.opts.Registry)
		if err != nil {
			return nil, fmt.Errorf("camera %q: decoder %s: %w", c.opts.Name, plan.Decoder, err)
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("camera %q: decoder %s: %w: %s", c.opts.Name, plan.Decoder, ErrMissingPlugin, strings.Join(missing, ", "))
		}
	}
	var vc *gocv.VideoCapture
	switch {
	case plan.Pipeline != "":
		vc, err = gocv.VideoCaptureFileWithAPI(plan.Pipeline, gocv.VideoCaptureGstreamer)
	case c.src.Kind == source.Device && c.src.Target == "":
		vc, err = gocv.VideoCaptureDeviceWithAPI(c.src.Index, gocv.VideoCaptureV4L2)
	case c.src.Kind == source.Device:
		vc, err = gocv.VideoCaptureFileWithAPI(c.src.Target, gocv.VideoCaptureV4L2)
	default:
		vc, err = c.openFFmpeg()
	}
	if err == nil && !vc.IsOpened() {
		err = errors.New("not opened")
	}
	if err != nil {
		if vc != nil {
			vc.Close()
		}
		if masked := c.src.Mask(err.Error()); masked != err.Error() {
			err = errors.New(masked)
		}
		return nil, fmt.Errorf("camera %q: open %s %s: %w", c.opts.Name, c.src.Kind, c.src, err)
	}
	if c.src.Kind == source.Device && plan.Pipeline == "" {
		if c.opts.Width > 0 {
			vc.Set(gocv.VideoCaptureFrameWidth, float64(c.opts.Width))
		}
		if c.opts.Height > 0 {
			vc.Set(gocv.VideoCaptureFrameHeight, float64(c.opts.Height))
		}
	}
	return vc, nil
}

// openFFmpeg opens the source with OpenCV's FFmpeg back-end, in turn with
// the other cameras (ffmpegOpens).
func (c *Camera) openFFmpeg() (*gocv.VideoCapture, error) {
	c.queued.Store(true)
	ffmpegOpens.Lock()
	defer ffmpegOpens.Unlock()
	c.queued.Store(false)
	c.progressed() // the attempt starts now
	return gocv.VideoCaptureFileWithAPI(c.src.Target, gocv.VideoCaptureFFmpeg)
}

// decoding decides how the source is decoded, once: a GStreamer decoder is
// chosen by the source's codec, which FFmpeg reports (the source is opened
// once more for it), and auto looks for the board's hardware decoders.
func (c *Camera) decoding() (gst.Plan, error) {
	if p := c.plan.Load(); p != nil {
		return *p, nil
	}
	o := gst.Options{Decoder: c.opts.Decoder, Threads: c.opts.DecoderThreads, Width: c.opts.Width, Height: c.opts.Height,
		IOTimeout: c.opts.IOTimeout, FPS: c.opts.FPS}
	var codec gst.Codec
	if c.needsCodec() {
		fourcc, err := c.fourcc()
		if err != nil {
			return gst.Plan{}, err
		}
		codec = gst.CodecOf(fourcc)
	}
	plan, err := gst.Choose(c.src, codec, o, c.opts.Registry)
	if err != nil {
		return gst.Plan{}, err
	}
	c.plan.Store(&plan)
	if c.log != nil && plan.Pipeline != "" && c.src.Kind != source.GStreamer {
		c.log.Info("camera decodes through GStreamer", "decoder", plan.Decoder, "hardware", plan.Hardware, "codec", codec,
			"pipeline", c.src.Mask(plan.Pipeline))
	}
	return plan, nil
}

// needsCodec says whether choosing the decoder needs the source's codec:
// for GStreamer's decoders of files and streams, and for auto where the
// board has a hardware decoder.
func (c *Camera) needsCodec() bool {
	if c.src.Kind == source.Device || c.src.Kind == source.GStreamer || gst.Check(c.src, c.opts.Decoder) != nil {
		return false // Choose says why, if it is a mistake
	}
	switch c.opts.Decoder {
	case gst.FFmpeg, "":
		return false
	case gst.Auto:
		if !gst.HardwareFor(c.src) {
			return false
		}
		for _, h := range gst.Hardwares() {
			if ok, err := c.opts.Registry.Has(h.Element); err == nil && ok {
				return true
			}
		}
		return false
	}
	return true
}

// fourcc opens the source with FFmpeg to read its codec.
func (c *Camera) fourcc() (string, error) {
	vc, err := c.openFFmpeg()
	if err == nil && !vc.IsOpened() {
		err = errors.New("not opened")
	}
	if vc != nil {
		defer vc.Close()
	}
	if err != nil {
		return "", fmt.Errorf("open %s %s for its codec: %s", c.src.Kind, c.src, c.src.Mask(err.Error()))
	}
	v := uint32(vc.Get(gocv.VideoCaptureFOURCC))
	return string([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}), nil
}

// Decoder says how the camera decodes once it has opened: "ffmpeg", a
// GStreamer decoder element with the board's name for a hardware one, or
// "pipeline" for a gst: source; "" before it has opened.
func (c *Camera) Decoder() string {
	p := c.plan.Load()
	switch {
	case p == nil:
		return ""
	case p.Hardware != "":
		return p.Decoder + " (" + p.Hardware + ")"
	}
	return p.Decoder
}

// Next returns the next frame to analyse. Files end with io.EOF (unless
// Loop); live sources block until a new frame arrives, FPS pacing allows, or
// ctx is done.
func (c *Camera) Next(ctx context.Context) (*Frame, error) {
	if c.done != nil {
		return c.nextLive(ctx)
	}
	return c.nextFile(ctx)
}

func (c *Camera) nextFile(ctx context.Context) (*Frame, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.isClosed() {
		return nil, ErrClosed
	}
	f := c.get()
	for {
		if c.vc == nil {
			if err := c.reopenFile(ctx); err != nil {
				c.Release(f)
				return nil, err
			}
		}
		idx := max(int64(math.Round(c.want)), c.pos)
		if skip := idx - c.pos; skip > 0 {
			// Grab decodes nothing for most codecs: skipping costs demuxing only.
			c.vc.Grab(int(skip))
		}
		ok := c.vc.Read(&f.Mat) && !f.Mat.Empty()
		// The FFmpeg backend counts successful grabs, so this stays exact even
		// when a skip ran past the end of the file.
		c.pos = c.loopBase + int64(c.vc.Get(gocv.VideoCapturePosFrames))
		if ok {
			f.Index, f.Time = c.pos-1, time.Now()
			c.want += c.step
			c.retry.reset()
			c.gotFrame()
			return f, nil
		}
		if c.pos == c.loopBase { // nothing read since it opened: empty, truncated or being written
			c.vc.Close()
			c.vc = nil
			err := fmt.Errorf("camera %q: file %s has no readable frames", c.opts.Name, c.src.Target)
			if err := c.retryAfter(ctx, "camera file unreadable; retrying", err); err != nil {
				c.Release(f)
				return nil, err
			}
			continue
		}
		if !c.opts.Loop {
			c.delivering.Store(false)
			c.Release(f)
			return nil, io.EOF
		}
		// Reopen rather than seek: seeking is unreliable for many containers.
		// A file that has gone is waited for like one that never opened.
		c.vc.Close()
		c.vc = nil
		c.loopBase = c.pos
	}
}

// grab reads the live source continuously, keeping only the newest frame.
func (c *Camera) grab(ctx context.Context) {
	defer close(c.done)
	var vc *gocv.VideoCapture
	defer func() {
		if vc != nil {
			vc.Close()
		}
	}()
	var (
		index int64
		opens int
	)
	for ctx.Err() == nil {
		if vc == nil {
			var err error
			if vc, err = c.openCapture(); err != nil {
				if c.retryAfter(ctx, "camera open failed; retrying", err) != nil {
					break
				}
				continue
			}
			if opens++; opens > 1 {
				c.log.Info("camera reconnected")
			}
		}
		f := c.get()
		if !vc.Read(&f.Mat) || f.Mat.Empty() {
			c.Release(f)
			vc.Close()
			vc = nil
			if c.retryAfter(ctx, "camera read failed; reconnecting", errors.New("no frame")) != nil {
				break
			}
			continue
		}
		c.retry.reset()
		c.gotFrame()
		f.Index, f.Time = index, time.Now()
		index++
		c.mu.Lock()
		old := c.slot
		c.slot = f
		c.mu.Unlock()
		if old != nil {
			c.dropped.Add(1)
			c.Release(old)
		}
		select {
		case c.ready <- struct{}{}:
		default:
		}
	}
	c.mu.Lock()
	if c.liveErr == nil {
		c.liveErr = ctx.Err()
	}
	c.mu.Unlock()
}

func (c *Camera) nextLive(ctx context.Context) (*Frame, error) {
	if c.opts.FPS > 0 {
		if wait := time.Until(c.nextAt); wait > 0 && !sleep(ctx, wait) {
			return nil, ctx.Err()
		}
	}
	for {
		c.mu.Lock()
		f, err := c.slot, c.liveErr
		c.slot = nil
		c.mu.Unlock()
		if f != nil {
			if c.opts.FPS > 0 {
				c.nextAt = time.Now().Add(time.Duration(float64(time.Second) / c.opts.FPS))
			}
			return f, nil
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ready:
		case <-c.done:
		}
	}
}

// Release gives a frame back for reuse; call it once per frame, and not
// while still using its Mat. Safe after Close.
func (c *Camera) Release(f *Frame) {
	if f == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.pool) >= poolCap {
		f.Mat.Close()
		return
	}
	c.pool = append(c.pool, f)
}

func (c *Camera) get() *Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.pool); n > 0 {
		f := c.pool[n-1]
		c.pool = c.pool[:n-1]
		return f
	}
	return &Frame{Mat: gocv.NewMat()}
}

func (c *Camera) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close stops the grabber (waiting for a read in progress to finish) and
// frees the capture and pooled frames. Frames still held are freed on Release.
func (c *Camera) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.liveErr = ErrClosed
	c.mu.Unlock()
	if c.done != nil {
		c.stop()
		<-c.done
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.pool {
		f.Mat.Close()
	}
	c.pool = nil
	if c.slot != nil {
		c.slot.Mat.Close()
		c.slot = nil
	}
	if c.vc != nil {
		c.vc.Close()
		c.vc = nil
	}
	return nil
}

// sleep waits d or until ctx is done; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Probe opens opts.Source once, without retrying, and reads a frame from a
// file: what check-config asks of each camera. Its error is for a warning:
// run retries the camera (unplugged, down, a file empty or being replaced)
// while the others run, but for ErrMissingPlugin. It returns how the camera
// decodes (Camera.Decoder).
func Probe(opts Options) (string, error) {
	src, err := source.Parse(opts.Source)
	if err != nil {
		return "", fmt.Errorf("camera %q: %w", opts.Name, err)
	}
	if src.Kind == source.File {
		if fi, err := os.Stat(src.Target); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			return "", fmt.Errorf("camera %q: file %s is empty (still being written?)", opts.Name, src.Target)
		}
	}
	if err := checkDecoder(opts, src); err != nil {
		return "", err
	}
	c := &Camera{opts: opts, src: src}
	vc, err := c.openCapture()
	if err != nil {
		return "", err
	}
	defer vc.Close()
	if src.Live() {
		return c.Decoder(), nil
	}
	m := gocv.NewMat()
	defer m.Close()
	if !vc.Read(&m) || m.Empty() {
		return "", fmt.Errorf("camera %q: file %s has no readable frames", opts.Name, src.Target)
	}
	return c.Decoder(), nil
}
