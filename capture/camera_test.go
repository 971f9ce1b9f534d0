package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/gst"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// onDecoders runs a test once with OpenCV's FFmpeg and once with GStreamer's
// software decoder (one thread), decode setting the options for each.
func onDecoders(t *testing.T, test func(t *testing.T, decode func(Options) Options)) {
	for _, d := range []string{gst.FFmpeg, gst.Software} {
		t.Run(d, func(t *testing.T) {
			test(t, func(o Options) Options {
				o.Decoder, o.DecoderThreads, o.Registry = d, 1, Registry{}
				return o
			})
		})
	}
}

// writeClip writes an n-frame MJPG clip at fps into a temp dir.
func writeClip(t *testing.T, n int, fps float64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.avi")
	if err := capturetest.Write(p, n, fps); err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll pulls frames until io.EOF or limit, releasing each, and returns their indexes.
func readAll(t *testing.T, c *Camera, limit int) []int64 {
	t.Helper()
	var idx []int64
	for len(idx) < limit {
		f, err := c.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next after %d frames: %v", len(idx), err)
		}
		if f.Mat.Empty() {
			t.Fatalf("frame %d is empty", f.Index)
		}
		idx = append(idx, f.Index)
		c.Release(f)
	}
	return idx
}

// sampled is the reference for FPS sampling: frame k*src/fps, rounded, for each k.
func sampled(n int, src, fps float64) []int64 {
	var out []int64
	last := int64(-1)
	for k := 0; ; k++ {
		i := int64(math.Round(float64(k) * src / fps))
		if i <= last {
			i = last + 1
		}
		if i >= int64(n) {
			return out
		}
		out = append(out, i)
		last = i
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestFileFrames(t *testing.T) {
	onDecoders(t, func(t *testing.T, decode func(Options) Options) {
		capturetest.CheckMats(t)
		clip := writeClip(t, 30, 25)
		tests := []struct {
			name string
			fps  float64
			want []int64
		}{
			{"every frame", 0, seq(0, 30)},
			{"fps above the file's", 100, seq(0, 30)},
			{"5 of 25 fps", 5, []int64{0, 5, 10, 15, 20, 25}},
			{"10 of 25 fps", 10, sampled(30, 25, 10)},
			{"7 of 25 fps", 7, sampled(30, 25, 7)},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c, err := Open(context.Background(), decode(Options{Name: "f", Source: clip, FPS: tc.fps}), testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				got := readAll(t, c, 1000)
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("indexes %v, want %v", got, tc.want)
				}
				// A finished file keeps saying io.EOF.
				if _, err := c.Next(context.Background()); !errors.Is(err, io.EOF) {
					t.Fatalf("Next after the end: %v, want io.EOF", err)
				}
			})
		}
	})
}

func TestSharedVideos(t *testing.T) {
	onDecoders(t, func(t *testing.T, decode func(Options) Options) {
		testenv.Long(t)
		capturetest.CheckMats(t)
		dir := testenv.Shared(t)
		for _, name := range []string{"real/ffpp_004.mp4", "real/hamilton_clip.mp4"} {
			t.Run(name, func(t *testing.T) {
				p := filepath.Join(dir, "data", "videos", name)
				vc, err := gocv.VideoCaptureFile(p)
				if err != nil {
					t.Fatal(err)
				}
				n, src := int(vc.Get(gocv.VideoCaptureFrameCount)), vc.Get(gocv.VideoCaptureFPS)
				vc.Close()
				for _, fps := range []float64{0, 5} {
					c, err := Open(context.Background(), decode(Options{Name: "shared", Source: p, FPS: fps}), testLogger(t))
					if err != nil {
						t.Fatal(err)
					}
					got := readAll(t, c, 100000)
					c.Close()
					want := seq(0, int64(n))
					if fps > 0 {
						want = sampled(n, src, fps)
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("fps %v: %d indexes %v, want %d %v", fps, len(got), got, len(want), want)
					}
				}
			})
		}
	})
}

func TestFileLoop(t *testing.T) {
	onDecoders(t, func(t *testing.T, decode func(Options) Options) {
		capturetest.CheckMats(t)
		clip := writeClip(t, 12, 25)
		for _, tc := range []struct {
			fps  float64
			want []int64
		}{
			{0, seq(0, 40)},
			// 25/10 = 2.5 frames per sample, continuing across the loop boundary.
			{10, sampled(1000, 25, 10)[:15]},
		} {
			t.Run(fmt.Sprint(tc.fps), func(t *testing.T) {
				c, err := Open(context.Background(), decode(Options{Name: "loop", Source: clip, FPS: tc.fps, Loop: true}), testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				var first, again *Frame
				var got []int64
				for len(got) < len(tc.want) {
					f, err := c.Next(context.Background())
					if err != nil {
						t.Fatalf("Next: %v", err)
					}
					got = append(got, f.Index)
					switch {
					case f.Index == 0:
						first = f
					case f.Index == 24 && tc.fps == 0:
						again = f // frame 0 of the third pass
					default:
						c.Release(f)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("indexes %v, want %v", got, tc.want)
				}
				if tc.fps == 0 {
					diff := gocv.Norm(first.Mat, gocv.NormInf) // sanity: a real image
					if diff == 0 {
						t.Fatal("first frame is black")
					}
					d := gocv.NewMat()
					gocv.AbsDiff(first.Mat, again.Mat, &d)
					if m := gocv.Norm(d, gocv.NormInf); m != 0 {
						t.Errorf("frame 24 differs from frame 0 after rewinding (max diff %v)", m)
					}
					d.Close()
					c.Release(again)
				}
				c.Release(first)
			})
		}
	})
}

func TestPoolReusesMats(t *testing.T) {
	capturetest.CheckMats(t)
	start, ok := capturetest.MatCount()
	if !ok {
		t.Skip("needs -tags matprofile")
	}
	c, err := Open(context.Background(), Options{Name: "pool", Source: writeClip(t, 10, 25), Loop: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	held := make([]*Frame, 0, 3)
	peak := 0
	for i := 0; i < 100; i++ {
		f, err := c.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
		if len(held) == cap(held) { // the consumer holds up to 3 frames at a time
			for _, h := range held {
				c.Release(h)
			}
			held = held[:0]
		}
		n, _ := capturetest.MatCount()
		peak = max(peak, n-start)
	}
	for _, h := range held {
		c.Release(h)
	}
	if peak > poolCap {
		t.Errorf("%d Mats open at peak for 100 frames, want at most %d (a pool, not a Mat per frame)", peak, poolCap)
	}
	c.Close()
	// Release after Close frees instead of pooling.
	if n, _ := capturetest.MatCount(); n != start {
		t.Errorf("%d Mats open after Close, want %d", n, start)
	}
}

// TestOpenErrors: a bad option or source is an error from Open, naming the
// camera; a source that does not open is not: Open returns at once, and the
// camera waits for it, retrying, with a log line that names camera and source.
func TestOpenErrors(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mp4")
	if err := os.WriteFile(garbage, []byte("this is not a video"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mp4")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, source string
		opts         Options
		openErr      []string // Open fails, naming these
		log          []string // else the retry log names these
	}{
		{"bad source", "ftp://x/y", Options{}, []string{`camera "cam"`, "ftp"}, nil},
		{"negative fps", "clip.mp4", Options{FPS: -1}, []string{`camera "cam"`, "fps"}, nil},
		{"missing file", filepath.Join(dir, "nope.mp4"), Options{}, nil, []string{"camera open failed; retrying", "camera=cam", "nope.mp4"}},
		{"not a video", garbage, Options{}, nil, []string{"camera open failed; retrying", "garbage.mp4"}},
		{"zero-byte video", empty, Options{Loop: true}, nil, []string{"retrying", "empty.mp4"}},
		{"missing device", "/dev/video99", Options{}, nil, []string{"camera open failed; retrying", "/dev/video99"}},
		{"missing device index", "97", Options{}, nil, []string{"camera open failed; retrying", "device 97"}},
		{"closed port", "rtsp://127.0.0.1:9/stream", Options{}, nil, []string{"camera open failed; retrying", "rtsp://127.0.0.1:9/stream"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Name, o.Source = "cam", tc.source
			var logs testenv.SyncBuffer
			began := time.Now()
			c, err := Open(context.Background(), o, slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.openErr != nil {
				if err == nil {
					c.Close()
					t.Fatal("Open succeeded")
				}
				for _, w := range tc.openErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v; want the camera, retrying", err)
			}
			defer c.Close()
			if d := time.Since(began); d > 2*time.Second {
				t.Errorf("Open took %v", d)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			if f, err := c.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next: frame %v, err %v; want it to wait until the deadline", f, err)
			}
			for _, w := range tc.log {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log does not mention %q:\n%s", w, logs.String())
				}
			}
			if n := strings.Count(logs.String(), "retry_in="); n < 2 {
				t.Errorf("%d attempts in 1.5 s; want retries:\n%s", n, logs.String())
			}
		})
	}
}

// TestFileAppears: a file that is not there at start is read once it appears.
func TestFileAppears(t *testing.T) {
	onDecoders(t, func(t *testing.T, decode func(Options) Options) {
		testenv.Long(t)
		capturetest.CheckMats(t)
		clip := writeClip(t, 6, 25)
		later := filepath.Join(t.TempDir(), "later.avi")
		c, err := Open(context.Background(), decode(Options{Name: "late", Source: later}), testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		time.AfterFunc(700*time.Millisecond, func() {
			data, _ := os.ReadFile(clip)
			os.WriteFile(later+".tmp", data, 0o600)
			os.Rename(later+".tmp", later)
		})
		if got := readAll(t, c, 100); fmt.Sprint(got) != fmt.Sprint(seq(0, 6)) {
			t.Fatalf("frames %v, want 0..5", got)
		}
	})
}

func TestFileVanishes(t *testing.T) {
	onDecoders(t, func(t *testing.T, decode func(Options) Options) {
		testenv.Long(t)
		capturetest.CheckMats(t)
		t.Run("deleted while looping, then back", func(t *testing.T) {
			clip := writeClip(t, 8, 25)
			data, err := os.ReadFile(clip)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Open(context.Background(), decode(Options{Name: "gone", Source: clip, Loop: true}), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := os.Remove(clip); err != nil {
				t.Fatal(err)
			}
			// The open file still reads to its end; then the rewind waits for it.
			for i := range 8 {
				f, err := c.Next(context.Background())
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				c.Release(f)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if f, err := c.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next while the file is gone: frame %v, err %v; want a wait", f, err)
			}
			cancel()
			if err := os.WriteFile(clip, data, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			f, err := c.Next(ctx)
			if err != nil {
				t.Fatalf("Next after the file came back: %v", err)
			}
			if f.Index != 8 {
				t.Errorf("index %d after the file came back, want 8 (indexes go on across loops)", f.Index)
			}
			c.Release(f)
		})
		t.Run("truncated", func(t *testing.T) {
			clip := writeClip(t, 30, 25)
			fi, err := os.Stat(clip)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(clip, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			c, err := Open(context.Background(), decode(Options{Name: "cut", Source: clip}), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := readAll(t, c, 1000)
			if len(got) == 0 || len(got) >= 30 {
				t.Fatalf("read %d frames of a half-truncated 30-frame clip", len(got))
			}
			if fmt.Sprint(got) != fmt.Sprint(seq(0, int64(len(got)))) {
				t.Fatalf("indexes %v not continuous", got)
			}
		})
	})
}

// mjpegServer streams numbered frames as multipart MJPEG at about fps, like
// an IP camera. Each frame shows its sequence number as 16 black/white blocks.
type mjpegServer struct {
	*httptest.Server
	seq  atomic.Int64 // the number of the frame being sent now
	fail atomic.Bool  // when set, requests are refused (the camera is gone)
}

const codeSide = 16 // pixels per bit block; the frame is 4x4 blocks

func newMJPEGServer(t *testing.T, fps float64) *mjpegServer {
	s := &mjpegServer{}
	frames := make(chan []byte)
	ctx, cancel := context.WithCancel(context.Background())
	encoded := make(chan struct{})
	// One encoder feeds every connection so the sequence is global. It owns
	// its Mat: closing it from the test while a frame is drawn would crash.
	go func() {
		defer close(encoded)
		img := gocv.NewMatWithSize(4*codeSide, 4*codeSide, gocv.MatTypeCV8UC3)
		defer img.Close()
		tick := time.NewTicker(time.Duration(float64(time.Second) / fps))
		defer tick.Stop()
		for n := int64(0); ; n++ {
			for b := 0; b < 16; b++ {
				v := 0.0
				if n>>b&1 == 1 {
					v = 255
				}
				r := image.Rect(b%4*codeSide, b/4*codeSide, b%4*codeSide+codeSide, b/4*codeSide+codeSide)
				gocv.Rectangle(&img, r, color.RGBA{uint8(v), uint8(v), uint8(v), 0}, -1)
			}
			buf, err := gocv.IMEncode(gocv.JPEGFileExt, img)
			if err != nil {
				panic(err)
			}
			jpg := append([]byte(nil), buf.GetBytes()...)
			buf.Close()
			s.seq.Store(n)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// Hand the frame to the connection if it is waiting; none is fine.
			select {
			case frames <- jpg:
			default:
			}
		}
	}()
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.fail.Load() {
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary=frame")
		for !s.fail.Load() {
			var jpg []byte
			select {
			case <-r.Context().Done():
				return
			case jpg = <-frames:
			}
			_, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(jpg))
			if err == nil {
				_, err = w.Write(append(jpg, "\r\n"...))
			}
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(func() {
		cancel()
		<-encoded
		s.CloseClientConnections()
		s.Close()
	})
	return s
}

// decodeSeq reads the sequence number a mjpegServer frame shows.
func decodeSeq(m gocv.Mat) int64 {
	var n int64
	for b := 0; b < 16; b++ {
		r := image.Rect(b%4*codeSide+4, b/4*codeSide+4, b%4*codeSide+codeSide-4, b/4*codeSide+codeSide-4)
		roi := m.Region(r)
		if roi.Mean().Val1 > 128 {
			n |= 1 << b
		}
		roi.Close()
	}
	return n
}

// TestStatus: a camera waiting out its back-off says so; one reading frames
// shows recent progress and no retrying.
func TestStatus(t *testing.T) {
	capturetest.CheckMats(t)
	for _, src := range []string{filepath.Join(t.TempDir(), "nope.avi"), "rtsp://127.0.0.1:9/stream"} {
		c, err := Open(context.Background(), Options{Name: "s", Source: src}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		go func() {
			if f, err := c.Next(ctx); err == nil {
				c.Release(f)
			}
		}()
		for !c.Status().Retrying && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if ctx.Err() != nil {
			t.Errorf("%s: never reported retrying", src)
		}
		cancel()
		c.Close()
	}
	c, err := Open(context.Background(), Options{Name: "ok", Source: writeClip(t, 3, 25)}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.Release(f)
	if s := c.Status(); s.Retrying || time.Since(s.Progress) > time.Second {
		t.Errorf("after a frame: %+v", s)
	}
}

// lacking is GStreamer's registry without some elements: a board where a
// plugin package is not installed.
type lacking []string

func (l lacking) Has(e string) (bool, error) {
	if slices.Contains(l, e) {
		return false, nil
	}
	return Registry{}.Has(e)
}

// TestMissingPlugin: a decoder whose GStreamer plugin is missing is an
// error naming the element and its package, before anything is opened;
// with it present the same camera opens and says how it decodes.
func TestMissingPlugin(t *testing.T) {
	capturetest.CheckMats(t)
	clip := capturetest.Clip(t)
	opts := Options{Name: "door", Source: clip, Decoder: gst.Software, DecoderThreads: 1, Registry: lacking{"avdec_h264", "jpegdec", "avdec_mpeg4"}}
	_, err := Probe(opts)
	if !errors.Is(err, ErrMissingPlugin) || !strings.Contains(err.Error(), `camera "door"`) || !strings.Contains(err.Error(), "(gstreamer1.0-") {
		t.Fatalf("Probe without the decoder's plugin: %v", err)
	}
	opts.Registry = Registry{}
	dec, err := Probe(opts)
	if err != nil {
		t.Fatal(err)
	}
	if dec != "avdec_h264" && dec != "jpegdec" {
		t.Errorf("decoder %q", dec)
	}
	opts.Decoder = gst.FFmpeg
	if dec, err := Probe(opts); err != nil || dec != gst.FFmpeg {
		t.Errorf("with ffmpeg: %q, %v", dec, err)
	}
}
