package clip

import (
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/poll"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func newRecorder(t *testing.T, o Options) *Recorder {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	o.Run = "r1"
	o.MaxWidth, o.Boxes = 640, true
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 30
	}
	r, err := New(o, []string{"cam1"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// feed encodes and publishes frames from..to-1 of cam1 at 10 frames a
// second, 800x450 (scaled to 640 wide), a face on each; at frame at it
// asks for a clip of ev (returned).
func feed(t *testing.T, r *Recorder, from, to int, at int, ev contract.Event) string {
	t.Helper()
	m := gocv.NewMatWithSize(450, 800, gocv.MatTypeCV8UC3)
	defer m.Close()
	var clip string
	for i := from; i < to; i++ {
		m.SetTo(gocv.NewScalar(float64(i*5%255), 80, 120, 0))
		gocv.Rectangle(&m, image.Rect(100+i*5, 100, 300+i*5, 300), color.RGBA{R: 255, G: 255, B: 255}, -1)
		ts := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		if err := r.Encode("cam1", int64(i), ts, m); err != nil {
			t.Fatal(err)
		}
		r.Frame("cam1", int64(i), []contract.FaceResult{{Box: [4]int{100 + i*5, 100, 200, 200}, PFake: 0.9, Label: contract.LabelFake, Track: 7}})
		if i == at {
			ev.TS = ts
			clip = r.Clip(ev)
		}
	}
	return clip
}

func fakeTrack(typ string, track int64, before string) contract.Event {
	ev := contract.Event{Type: typ, Camera: "cam1", After: contract.TrackInfo{Track: track, State: contract.TrackFake}}
	if before != "" {
		ev.Before = &contract.TrackInfo{Track: track, State: before}
	}
	return ev
}

// probe opens a written clip as a player would: its frames, size, codec
// and rate.
func probe(t *testing.T, path string) (frames int, size image.Point, codec string, fps float64) {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	for vc.Read(&m) && !m.Empty() {
		frames++
		size = image.Pt(m.Cols(), m.Rows())
	}
	return frames, size, vc.CodecString(), vc.Get(gocv.VideoCaptureFPS)
}

// TestClipAroundTheEvent: a track turning fake at frame 20 gets a clip of
// the second before (frames 10..20, from the ring) and the second after
// (21..30), scaled to 640 wide, H.264, at the frames' own 10 per second;
// later events of the track name the same clip, its end forgets it.
func TestClipAroundTheEvent(t *testing.T) {
	capturetest.CheckMats(t)
	r := newRecorder(t, Options{Pre: time.Second, Post: time.Second})
	path := feed(t, r, 0, 40, 20, fakeTrack(contract.EventUpdate, 7, contract.TrackUncertain))
	if want := r.Path("cam1", 7); path != want || filepath.Base(path) != "r1-7.mp4" {
		t.Fatalf("clip %q, want %q", path, want)
	}
	if got := r.Clip(fakeTrack(contract.EventUpdate, 7, contract.TrackFake)); got != path {
		t.Errorf("a later event of the track names %q, want %q", got, path)
	}
	if got := r.Clip(fakeTrack(contract.EventEnd, 7, contract.TrackFake)); got != path {
		t.Errorf("its end names %q, want %q", got, path)
	}
	if !poll.Until(20*time.Second, func() bool { _, err := os.Stat(path); return err == nil }) {
		t.Fatal("no clip written")
	}
	r.Close()
	frames, size, codec, fps := probe(t, path)
	if frames != 21 || size != image.Pt(640, 360) || codec != "avc1" || fps < 9.5 || fps > 10.5 {
		t.Errorf("clip: %d frames of %v, %q at %.1f fps; want 21 of 640x360, avc1 at 10", frames, size, codec, fps)
	}
}

// TestClipRules: a track that is not fake gets no clip unless All (and then
// when it appears); Close writes a clip still taking frames with what it
// has; the oldest clips go beyond MaxBytes.
func TestClipRules(t *testing.T) {
	capturetest.CheckMats(t)
	dir := t.TempDir()
	r := newRecorder(t, Options{Dir: dir, Pre: time.Second, Post: time.Hour})
	real := contract.Event{Type: contract.EventNew, Camera: "cam1", After: contract.TrackInfo{Track: 3, State: contract.TrackReal}}
	if got := feed(t, r, 0, 5, 4, real); got != "" {
		t.Errorf("a real track got clip %q", got)
	}
	path := feed(t, r, 5, 12, 8, fakeTrack(contract.EventNew, 4, ""))
	if path == "" {
		t.Fatal("a track new and fake got no clip")
	}
	r.Close()                                            // post is an hour away: written with what it has
	if frames, _, _, _ := probe(t, path); frames != 12 { // 0..8 from the ring (within the second before), 9..11 after
		t.Errorf("closed early: %d frames, want 12", frames)
	}

	all := newRecorder(t, Options{Dir: dir, Pre: time.Second, Post: 0, All: true, MaxBytes: 1})
	defer all.Close()
	if got := feed(t, all, 0, 3, 2, real); got == "" {
		t.Error("All: a new real track got no clip")
	}
	if !poll.Until(20*time.Second, func() bool { _, err := os.Stat(path); return os.IsNotExist(err) }) {
		t.Errorf("%s kept beyond max bytes", path)
	}
}

func TestNewRefuses(t *testing.T) {
	for i, o := range []Options{
		{Pre: time.Second, MaxWidth: 640, MaxBytes: 1},
		{Dir: "x", MaxWidth: 640, MaxBytes: 1},
		{Dir: "x", Pre: -time.Second, Post: time.Second, MaxWidth: 640, MaxBytes: 1},
		{Dir: "x", Pre: time.Second, MaxWidth: 0, MaxBytes: 1},
	} {
		if _, err := New(o, nil); err == nil {
			t.Errorf("options %d accepted: %+v", i, o)
		}
	}
}

func ExampleRecorder_Path() {
	r := &Recorder{opts: Options{Dir: "/var/lib/deepfaked/clips", Run: "a1b2"}}
	fmt.Println(r.Path("hallway", 7))
	// Output: /var/lib/deepfaked/clips/hallway/a1b2-7.mp4
}

// BenchmarkEncode is the live path's cost per analysed frame: a 1280x720
// frame of Megamind (or a drawn one) scaled to 640 wide and JPEG-encoded
// into the ring, and its faces added. It reports the JPEG's size.
func BenchmarkEncode(b *testing.B) {
	m := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer m.Close()
	if vc, err := gocv.VideoCaptureFile("/usr/share/doc/opencv-doc/examples/data/Megamind.avi"); err == nil {
		f := gocv.NewMat()
		if vc.Read(&f) && !f.Empty() {
			gocv.Resize(f, &m, image.Pt(1280, 720), 0, 0, gocv.InterpolationLinear)
		}
		f.Close()
		vc.Close()
	}
	r, err := New(Options{Dir: b.TempDir(), Run: "r", Pre: 5 * time.Second, Post: 5 * time.Second, MaxWidth: 640, MaxBytes: 1 << 30}, []string{"cam1"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	faces := []contract.FaceResult{{Box: [4]int{100, 100, 200, 200}, PFake: 0.4, Label: contract.LabelReal}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts := t0.Add(time.Duration(i) * 200 * time.Millisecond)
		if err := r.Encode("cam1", int64(i), ts, m); err != nil {
			b.Fatal(err)
		}
		r.Frame("cam1", int64(i), faces)
	}
	b.StopTimer()
	c := r.cams["cam1"]
	b.ReportMetric(float64(len(c.ring[len(c.ring)-1].jpeg)), "jpeg-bytes")
	b.ReportMetric(float64(len(c.ring)), "ring-frames")
}

// TestClipSharingAndRate: a second track turning fake while a clip is still
// taking frames shares that clip (one clip for a busy scene), which runs
// Post past the later moment; with FPS the frames kept are at most that
// many a second.
func TestClipSharingAndRate(t *testing.T) {
	capturetest.CheckMats(t)
	r := newRecorder(t, Options{Pre: time.Second, Post: time.Second, FPS: 5})
	m := gocv.NewMatWithSize(360, 640, gocv.MatTypeCV8UC3)
	defer m.Close()
	var first, second string
	for i := range 50 { // 10 frames a second, 5 kept
		ts := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		if err := r.Encode("cam1", int64(i), ts, m); err != nil {
			t.Fatal(err)
		}
		r.Frame("cam1", int64(i), nil)
		switch i {
		case 20:
			ev := fakeTrack(contract.EventNew, 1, "")
			ev.TS = ts
			first = r.Clip(ev)
		case 25:
			ev := fakeTrack(contract.EventNew, 2, "")
			ev.TS = ts
			second = r.Clip(ev)
		}
	}
	if first == "" || second != first {
		t.Fatalf("clips %q and %q; want the second track to share the first's", first, second)
	}
	if !poll.Until(20*time.Second, func() bool { _, err := os.Stat(first); return err == nil }) {
		t.Fatal("no clip written")
	}
	r.Close()
	// Kept frames: even ones (5 a second); from 10 (a second before 20) to
	// 34 (a second after 25): 13 frames, at 5 a second.
	frames, _, _, fps := probe(t, first)
	if frames != 13 || fps < 4.5 || fps > 5.5 {
		t.Errorf("shared clip: %d frames at %.1f fps; want 13 at 5", frames, fps)
	}
}
