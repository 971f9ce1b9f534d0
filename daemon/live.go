package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/annotate"
)

// The live view's throttle: a camera's frame is copied at most every
// liveEvery, and only for liveWatch after the page last asked for it, so a
// camera nobody watches pays one atomic load per frame.
const (
	liveEvery   = 500 * time.Millisecond
	liveWatch   = 5 * time.Second
	liveQuality = 80
)

// liveView is the cameras' latest frames for the page (web.Live). The map
// is made before the pipeline starts and never changes.
type liveView struct{ cams map[string]*liveCam }

func newLiveView(names []string) *liveView {
	v := &liveView{cams: map[string]*liveCam{}}
	for _, n := range names {
		c := &liveCam{frame: gocv.NewMat(), changed: make(chan struct{})}
		c.want.Store(-1)
		v.cams[n] = c
	}
	return v
}

// liveCam is one camera's latest copied frame and that frame's verdict.
type liveCam struct {
	watchUntil  atomic.Int64 // unix ns: copy frames until then
	streamUntil atomic.Int64 // unix ns: copy every frame, not every liveEvery, until then (a stream watches)
	want        atomic.Int64 // the copied frame's index while its verdict has not come; -1 none
	nextCopy    int64        // unix ns; the camera's reader goroutine's alone

	mu      sync.Mutex // guards the fields below
	frame   gocv.Mat
	index   int64
	verdict []byte // the copied frame's verdict JSON, once published
	jpeg    []byte // frame with verdict drawn, for index and len(verdict) > 0 as cached
	jpegAt  int64
	jpegV   bool
	closed  bool
	copied  time.Time     // when frame was copied
	changed chan struct{} // closed and replaced when a frame is copied or its verdict comes
}

// offer copies f when the camera is watched and the last copy is old
// enough. It runs on the camera's reader goroutine; it never waits for the
// page (TryLock: a copy is skipped while a JPEG is being drawn).
func (c *liveCam) offer(f *capture.Frame) {
	now := time.Now().UnixNano()
	streaming := now <= c.streamUntil.Load()
	if now > c.watchUntil.Load() || now < c.nextCopy && !streaming || !c.mu.TryLock() {
		return
	}
	// A stream sends frames with their verdicts: while the copy's verdict
	// has not come (inference runs a frame or two behind the reader), the
	// newer frame is not copied over it, unless that verdict is late.
	if streaming && c.want.Load() >= 0 && now-c.copied.UnixNano() < int64(liveVerdictWait) {
		c.mu.Unlock()
		return
	}
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.nextCopy = now + int64(liveEvery)
	f.Mat.CopyTo(&c.frame)
	c.index, c.verdict, c.copied = f.Index, c.verdict[:0], time.Unix(0, now)
	c.want.Store(f.Index)
	c.notify()
}

// verdictOf keeps payload when it is the verdict of the copied frame. It
// runs on the inference goroutine (the publisher tap); the frame number is
// read without decoding the JSON.
func (c *liveCam) verdictOf(payload []byte) {
	want := c.want.Load()
	if want < 0 || verdictFrame(payload) != want || !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	if c.index == want {
		c.verdict = append(c.verdict[:0], payload...)
		c.want.Store(-1)
		c.notify()
	}
}

// notify wakes the streams waiting for the next frame; c.mu is held.
func (c *liveCam) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// liveVerdictWait is how long a stream waits for a copied frame's verdict
// before it sends the frame without its boxes (a frame without faces has a
// verdict too, so this is for a slow model run).
const liveVerdictWait = 300 * time.Millisecond

// liveStreamWait is how long Next waits for a frame before it returns none,
// so the stream's handler checks on its client.
const liveStreamWait = 2 * time.Second

// Next is web.Live's: the next frame after index after, with its verdict
// (or without, past liveVerdictWait), while copying every analysed frame.
func (v *liveView) Next(ctx context.Context, camera string, after int64) ([]byte, int64, bool) {
	c, ok := v.cams[camera]
	if !ok {
		return nil, 0, false
	}
	deadline := time.Now().Add(liveStreamWait)
	for {
		now := time.Now()
		c.streamUntil.Store(now.Add(liveWatch).UnixNano())
		c.watchUntil.Store(now.Add(liveWatch).UnixNano())
		c.mu.Lock()
		fresh := !c.closed && !c.frame.Empty() && c.index > after
		ready := fresh && (len(c.verdict) > 0 || now.Sub(c.copied) >= liveVerdictWait)
		wait := c.changed
		wake := deadline.Sub(now)
		if fresh && !ready {
			wake = min(wake, liveVerdictWait-now.Sub(c.copied))
		}
		closed := c.closed
		c.mu.Unlock()
		switch {
		case ready:
			return v.Frame(camera)
		case closed || !now.Before(deadline):
			return nil, 0, false
		}
		t := time.NewTimer(wake)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, false
		case <-wait:
		case <-t.C:
		}
		t.Stop()
	}
}

// verdictFrame is a verdict's "frame" (contract.Verdict writes it before
// any face), or -1.
func verdictFrame(payload []byte) int64 {
	const key = `"frame":`
	i := bytes.Index(payload, []byte(key))
	if i < 0 {
		return -1
	}
	rest := payload[i+len(key):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// Frame is web.Live's: it turns the copying on for liveWatch and draws the
// latest copied frame's faces onto it, once per frame and verdict.
func (v *liveView) Frame(camera string) ([]byte, int64, bool) {
	c, ok := v.cams[camera]
	if !ok {
		return nil, 0, false
	}
	c.watchUntil.Store(time.Now().Add(liveWatch).UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.frame.Empty() {
		return nil, 0, false
	}
	hasV := len(c.verdict) > 0
	if c.jpeg != nil && c.jpegAt == c.index && c.jpegV == hasV {
		return c.jpeg, c.index, true
	}
	b, err := drawFaces(c.frame, c.verdict)
	if err != nil {
		return nil, 0, false
	}
	c.jpeg, c.jpegAt, c.jpegV = b, c.index, hasV
	return b, c.index, true
}

// drawFaces draws a verdict's faces (box, track, label, p_fake) on a copy
// of frame and encodes it as JPEG.
func drawFaces(frame gocv.Mat, verdict []byte) ([]byte, error) {
	img := frame.Clone()
	defer img.Close()
	if len(verdict) > 0 {
		var v contract.Verdict
		if err := json.Unmarshal(verdict, &v); err != nil {
			return nil, err
		}
		annotate.Faces(&img, v.Faces, 1)
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, img, []int{gocv.IMWriteJpegQuality, liveQuality})
	if err != nil {
		return nil, err
	}
	defer buf.Close()
	return bytes.Clone(buf.GetBytes()), nil
}

// close frees the frames; after it nothing is copied. Call it once the
// cameras' readers have stopped.
func (v *liveView) close() {
	for _, c := range v.cams {
		c.mu.Lock()
		c.closed = true
		c.frame.Close()
		c.notify()
		c.mu.Unlock()
	}
}

// liveSource is a camera whose frames the live view may copy.
type liveSource struct {
	*capture.Camera
	cam *liveCam
}

func (s liveSource) Next(ctx context.Context) (*capture.Frame, error) {
	f, err := s.Camera.Next(ctx)
	if err == nil {
		s.cam.offer(f)
	}
	return f, err
}
