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
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/source"
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
	// Width and Height request a device resolution (0: the device default).
	Width, Height int
}

// Frame is one captured image. Give it back with Camera.Release.
type Frame struct {
	Mat gocv.Mat
	// Index is the frame's position in the stream from 0; skipped frames count.
	Index int64
	// Time is when the frame was read.
	Time time.Time
}

// Reconnect back-off for live sources that fail.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
)

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

	// File mode: state owned by the goroutine calling Next.
	vc       *gocv.VideoCapture
	pos      int64   // stream index of the next frame the capture will return
	want     float64 // stream index of the next frame to analyse (sampling)
	step     float64 // frames between samples
	loopBase int64   // stream index of the file's first frame in this loop

	// Live mode.
	slot    *Frame        // the latest frame, guarded by mu
	ready   chan struct{} // signalled when slot fills
	stop    context.CancelFunc
	done    chan struct{} // closed when the grabber exits
	liveErr error         // why the grabber stopped, guarded by mu
	nextAt  time.Time     // earliest time Next may hand out a frame (FPS pacing)
}

// Open parses opts.Source and opens it. A live source gets a grabber goroutine
// that reads until ctx is cancelled or Close is called, reconnecting after
// failures.
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
	c := &Camera{opts: opts, src: src, log: log.With("camera", opts.Name, "source", src.String())}
	vc, err := c.openCapture()
	if err != nil {
		return nil, err
	}
	if !src.Live() {
		c.vc = vc
		c.step = 1
		if opts.FPS > 0 {
			if srcFPS := vc.Get(gocv.VideoCaptureFPS); srcFPS > 0 && !math.IsNaN(srcFPS) && srcFPS > opts.FPS {
				c.step = srcFPS / opts.FPS
			}
		}
		return c, nil
	}
	gctx, stop := context.WithCancel(ctx)
	c.stop, c.ready, c.done = stop, make(chan struct{}, 1), make(chan struct{})
	go c.grab(gctx, vc)
	return c, nil
}

// Name is the camera's configured name.
func (c *Camera) Name() string { return c.opts.Name }

// Source is the parsed source.
func (c *Camera) Source() source.Source { return c.src }

func (c *Camera) openCapture() (*gocv.VideoCapture, error) {
	var (
		vc  *gocv.VideoCapture
		err error
	)
	switch {
	case c.src.Kind == source.Device && c.src.Target == "":
		vc, err = gocv.VideoCaptureDeviceWithAPI(c.src.Index, gocv.VideoCaptureV4L2)
	case c.src.Kind == source.Device:
		vc, err = gocv.VideoCaptureFileWithAPI(c.src.Target, gocv.VideoCaptureV4L2)
	case c.src.Kind == source.GStreamer:
		vc, err = gocv.VideoCaptureFileWithAPI(c.src.Target, gocv.VideoCaptureGstreamer)
	default:
		vc, err = gocv.VideoCaptureFileWithAPI(c.src.Target, gocv.VideoCaptureFFmpeg)
	}
	if err == nil && !vc.IsOpened() {
		err = errors.New("not opened")
	}
	if err != nil {
		if vc != nil {
			vc.Close()
		}
		return nil, fmt.Errorf("camera %q: open %s %s: %w", c.opts.Name, c.src.Kind, c.src, err)
	}
	if c.src.Kind == source.Device {
		if c.opts.Width > 0 {
			vc.Set(gocv.VideoCaptureFrameWidth, float64(c.opts.Width))
		}
		if c.opts.Height > 0 {
			vc.Set(gocv.VideoCaptureFrameHeight, float64(c.opts.Height))
		}
	}
	return vc, nil
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
			return f, nil
		}
		if !c.opts.Loop {
			c.Release(f)
			return nil, io.EOF
		}
		if c.pos == c.loopBase {
			c.Release(f)
			return nil, fmt.Errorf("camera %q: file %s has no readable frames", c.opts.Name, c.src.Target)
		}
		// Reopen rather than seek: seeking is unreliable for many containers.
		vc, err := c.openCapture()
		if err != nil {
			c.Release(f)
			return nil, fmt.Errorf("rewind: %w", err)
		}
		c.vc.Close()
		c.vc = vc
		c.loopBase = c.pos
	}
}

// grab reads the live source continuously, keeping only the newest frame.
func (c *Camera) grab(ctx context.Context, vc *gocv.VideoCapture) {
	defer close(c.done)
	defer func() {
		if vc != nil {
			vc.Close()
		}
	}()
	var index int64
	backoff := minBackoff
	for ctx.Err() == nil {
		if vc == nil {
			var err error
			if vc, err = c.openCapture(); err != nil {
				c.log.Warn("camera reconnect failed", "err", err, "retry_in", backoff)
				if !sleep(ctx, backoff) {
					break
				}
				backoff = min(backoff*2, maxBackoff)
				continue
			}
			c.log.Info("camera reconnected")
		}
		f := c.get()
		if !vc.Read(&f.Mat) || f.Mat.Empty() {
			c.Release(f)
			vc.Close()
			vc = nil
			c.log.Warn("camera read failed; reconnecting", "retry_in", backoff)
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		f.Index, f.Time = index, time.Now()
		index++
		c.mu.Lock()
		old := c.slot
		c.slot = f
		c.mu.Unlock()
		if old != nil {
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
