package capture

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func openLive(t *testing.T, ctx context.Context, src string, fps float64) *Camera {
	t.Helper()
	c, err := Open(ctx, Options{Name: "live", Source: src, FPS: fps}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func next(t *testing.T, c *Camera) *Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return f
}

func TestLiveLatestFrameWins(t *testing.T) {
	capturetest.CheckMats(t)
	srv := newMJPEGServer(t, 50)
	c := openLive(t, context.Background(), srv.URL+"/video.mjpg", 0)
	if !c.Source().Live() {
		t.Fatal("http source not live")
	}
	f := next(t, c)
	last := f.Index
	c.Release(f)
	for i := 0; i < 4; i++ {
		time.Sleep(300 * time.Millisecond) // a slow consumer: ~15 frames arrive meanwhile
		f := next(t, c)
		got, now := decodeSeq(f.Mat), srv.seq.Load()
		age, index := time.Since(f.Time), f.Index
		// Released frames go back to the pool, and the grabber rewrites them.
		c.Release(f)
		// Fresh: a few frames behind the server, never the ~15 frame backlog
		// (the bounds leave room for a loaded machine under -race).
		if now-got > 10 || age > 250*time.Millisecond {
			t.Errorf("after a 300ms pause got server frame %d while it sends %d (frame %v old)", got, now, age)
		}
		// A queue would give last+1; the server itself drops frames when this
		// connection is late, so ask for a clear jump, not all 15.
		if index-last < 4 {
			t.Errorf("index went %d -> %d over 300ms at 50fps; frames were queued, not dropped", last, index)
		}
		last = index
		// A fast consumer waits for a new frame rather than getting the same one.
		g := next(t, c)
		if g.Index <= last {
			t.Errorf("index %d after %d", g.Index, last)
		}
		last = g.Index
		c.Release(g)
	}
}

func TestLiveFPSPacing(t *testing.T) {
	capturetest.CheckMats(t)
	srv := newMJPEGServer(t, 50)
	c := openLive(t, context.Background(), srv.URL+"/video.mjpg", 5)
	c.Release(next(t, c))
	start := time.Now()
	for i := 0; i < 5; i++ {
		c.Release(next(t, c))
	}
	// The lower bound is the pacing; the upper only catches a wait far too long.
	if el := time.Since(start); el < 950*time.Millisecond || el > 5*time.Second {
		t.Fatalf("5 frames at fps 5 took %v, want about 1s", el)
	}
}

func TestLiveReconnect(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	srv := newMJPEGServer(t, 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := openLive(t, ctx, srv.URL+"/video.mjpg", 0)
	f := next(t, c)
	before := f.Index
	c.Release(f)

	// The camera vanishes: the stream drops and reconnects are refused.
	srv.fail.Store(true)
	srv.CloseClientConnections()
	time.Sleep(time.Second)
	// Drain what arrived before the drop, then check nothing more comes.
	drain, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	for {
		f, err := c.Next(drain)
		if err != nil {
			break
		}
		c.Release(f)
	}
	stop()
	quiet, stop := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if f, err := c.Next(quiet); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next while the camera is gone: frame %v, err %v; want a wait", f, err)
	}
	stop()

	srv.fail.Store(false)
	f = next(t, c)
	if f.Index <= before {
		t.Fatalf("index %d after reconnecting, want > %d", f.Index, before)
	}
	c.Release(f)

	cancel()
	done := make(chan error, 1)
	go func() {
		// The frame already waiting may still be handed out; then the end.
		for {
			f, err := c.Next(context.Background())
			if err != nil {
				done <- err
				return
			}
			c.Release(f)
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after the camera's context ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after the camera's context ended")
	}
	c.Close()
	if _, err := c.Next(context.Background()); !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestGStreamer(t *testing.T) {
	capturetest.CheckMats(t)
	c, err := Open(context.Background(), Options{Name: "gst", Source: "gst:videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=50/1 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// videotestsrc and appsink come with gstreamer1.0-plugins-base (make deps).
	for i := 0; i < 3; i++ {
		f := next(t, c)
		if f.Mat.Cols() != 160 || f.Mat.Rows() != 120 || f.Mat.Channels() != 3 {
			t.Fatalf("frame %dx%dx%d, want 160x120x3", f.Mat.Cols(), f.Mat.Rows(), f.Mat.Channels())
		}
		c.Release(f)
	}
}

// TestRTSPWithPassword: an IP camera behind a user and password (GStreamer's
// RTSP server) gives frames through the rtsp://user:password@ source; with a
// wrong password the camera retries, and neither password reaches the log.
func TestRTSPWithPassword(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	addr := capturetest.RTSPCamera(t, capturetest.Clip(t), "viewer", "s3cret-pw")
	t.Setenv(ffmpegOptionsEnv, "")
	if err := SetFFmpegEnv(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	onDecoders(t, func(t *testing.T, decode func(Options) Options) {
		for _, tc := range []struct {
			password string
			frames   bool
		}{{"s3cret-pw", true}, {"wrong-pw", false}} {
			var log testenv.SyncBuffer
			logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, err := Open(context.Background(), decode(Options{Name: "door", Source: "rtsp://viewer:" + tc.password + "@" + addr}), logger)
			if err != nil {
				t.Fatal(err)
			}
			if tc.frames {
				for i := 0; i < 3; i++ {
					f := next(t, c)
					if f.Mat.Empty() || f.Mat.Channels() != 3 {
						t.Fatalf("frame %d: %dx%dx%d", i, f.Mat.Cols(), f.Mat.Rows(), f.Mat.Channels())
					}
					c.Release(f)
				}
			} else if !poll.Until(15*time.Second, func() bool { return c.Status().Retrying }) {
				t.Errorf("wrong password: not retrying within 15 s")
			}
			c.Close()
			if strings.Contains(log.String(), tc.password) {
				t.Errorf("the password is in the log:\n%s", log.String())
			}
			if !tc.frames && !strings.Contains(log.String(), "door") {
				t.Errorf("the log does not name the camera:\n%s", log.String())
			}
		}
	})
}
