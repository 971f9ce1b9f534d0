package collect

import (
	"context"
	"encoding/json"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// imagenet is the reference backbone's normalisation.
var imagenet = spec.DefaultMetadata()

// videoFrame is the first frame of the test clip (a real face when the shared
// data is present, else Megamind).
func videoFrame(t *testing.T) gocv.Mat {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(capturetest.Clip(t))
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	img := gocv.NewMat()
	if !vc.Read(&img) || img.Empty() {
		img.Close()
		t.Fatal("no frame in the test clip")
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// offerer offers faces cut from a real frame.
type offerer struct {
	t     *testing.T
	c     *Collector
	frame gocv.Mat
	ts    time.Time
}

func newOfferer(t *testing.T, c *Collector) *offerer {
	return &offerer{t: t, c: c, frame: videoFrame(t), ts: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
}

func (o *offerer) offer(cam string, frame int64, face int, pFake float64) bool {
	box := image.Rect(10+face*20, 10, 90+face*20, 90)
	roi := o.frame.Region(box)
	defer roi.Close()
	return o.c.Offer(Face{Camera: cam, Frame: frame, Index: face, TS: o.ts.Add(time.Duration(frame) * 40 * time.Millisecond),
		Box: box, PFake: pFake, Threshold: 0.5, Backbone: "bb0123456789", Head: "hd0123456789", Crop: roi})
}

// withDefaults is o with the config's defaults and the reference backbone's
// normalisation where o leaves them zero.
func withDefaults(o Options) Options {
	d, meta := config.DefaultTrain().Collect, spec.DefaultMetadata()
	if o.MaxFiles == 0 {
		o.MaxFiles = d.MaxFiles
	}
	if o.JPEGQuality == 0 {
		o.JPEGQuality = d.JPEGQuality
	}
	if o.Mean == ([3]float32{}) && o.Std == ([3]float32{}) {
		o.Mean, o.Std = meta.Mean, meta.Std
	}
	if o.ColorOrder == "" {
		o.ColorOrder = meta.ColorOrder
	}
	return o
}

func newCollector(t *testing.T, opts Options) *Collector {
	t.Helper()
	c, err := New(withDefaults(opts), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSelection(t *testing.T) {
	type offer struct {
		cam   string
		pFake float64
		want  string // "" not chosen, else the reason
	}
	for _, tc := range []struct {
		name   string
		opts   Options
		offers []offer
	}{
		{"off", Options{}, []offer{{"a", 0.5, ""}, {"a", 0.4, ""}}},
		{"band inclusive", Options{BandLow: 0.35, BandHigh: 0.65}, []offer{
			{"a", 0.34, ""}, {"a", 0.35, ReasonBand}, {"a", 0.5, ReasonBand}, {"a", 0.65, ReasonBand}, {"a", 0.66, ""}, {"b", 0.99, ""}}},
		{"every 3rd face per camera", Options{EveryN: 3}, []offer{
			{"a", 0.1, ""}, {"b", 0.1, ""}, {"a", 0.1, ""}, {"a", 0.1, ReasonEveryN}, {"b", 0.1, ""}, {"b", 0.9, ReasonEveryN},
			{"a", 0.1, ""}, {"a", 0.1, ""}, {"a", 0.1, ReasonEveryN}}},
		{"band and every 2nd", Options{BandLow: 0.4, BandHigh: 0.6, EveryN: 2}, []offer{
			{"a", 0.5, ReasonBand}, {"a", 0.9, ReasonEveryN}, {"a", 0.9, ""}, {"a", 0.45, ReasonBand}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			capturetest.CheckMats(t)
			tc.opts.Dir = t.TempDir()
			c := newCollector(t, tc.opts)
			o := newOfferer(t, c)
			var want []Meta
			for i, f := range tc.offers {
				if got := o.offer(f.cam, int64(i), 0, f.pFake); got != (f.want != "") {
					t.Errorf("offer %d (%s, p_fake %g) chosen = %v, want reason %q", i, f.cam, f.pFake, got, f.want)
				}
				if f.want != "" {
					want = append(want, Meta{Camera: f.cam, Frame: int64(i), TS: o.ts.Add(time.Duration(i) * 40 * time.Millisecond),
						Box: [4]int{10, 10, 80, 80}, PFake: f.pFake, Threshold: 0.5,
						Model: Model{"bb0123456789", "hd0123456789"}, Reason: f.want})
				}
			}
			c.Close()
			crops, err := List(tc.opts.Dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []Meta
			for _, cr := range crops {
				got = append(got, cr.Meta)
				checkJPEG(t, cr.Path, 80, 80)
			}
			slices.Reverse(got) // newest first
			if !slices.EqualFunc(got, want, func(a, b Meta) bool { return a.TS.Equal(b.TS) && withTS(a, time.Time{}) == withTS(b, time.Time{}) }) {
				t.Errorf("saved\n%+v\nwant\n%+v", got, want)
			}
			if s := c.Stats(); s.Saved != uint64(len(want)) || s.Dropped+s.Failed+s.Removed != 0 {
				t.Errorf("stats %+v, want %d saved and nothing else", s, len(want))
			}
		})
	}
}

func withTS(m Meta, ts time.Time) Meta { m.TS = ts; return m }

func checkJPEG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := gocv.IMRead(path, gocv.IMReadColor)
	defer img.Close()
	if img.Cols() != w || img.Rows() != h {
		t.Errorf("%s is %dx%d, want %dx%d", path, img.Cols(), img.Rows(), w, h)
	}
}

func TestSidecarJSON(t *testing.T) {
	capturetest.CheckMats(t)
	dir := t.TempDir()
	c := newCollector(t, Options{Dir: dir, BandLow: 0, BandHigh: 1})
	o := newOfferer(t, c)
	o.offer("cam1", 7, 1, 0.5)
	c.Close()
	b, err := os.ReadFile(filepath.Join(dir, "cam1", "000000000007-"+strings.Split(fileName(7, o.ts.Add(280*time.Millisecond), 1), "-")[1]+"-01.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"camera": "cam1", "frame": 7.0, "face": 1.0, "ts": "2026-11-28T12:00:00.28Z",
		"box": []any{30.0, 10.0, 80.0, 80.0}, "p_fake": 0.5, "threshold": 0.5,
		"model": map[string]any{"backbone": "bb0123456789", "head": "hd0123456789"}, "reason": "band"}
	for k, v := range want {
		if g, _ := json.Marshal(m[k]); string(g) != string(must(json.Marshal(v))) {
			t.Errorf("sidecar %s = %s, want %v", k, g, v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("sidecar has keys %v, want %d", m, len(want))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		change func(o *Options)
		want   string
	}{
		{func(o *Options) { o.Dir = "" }, "no folder"},
		{func(o *Options) { o.BandLow, o.BandHigh = 0.7, 0.3 }, "band [0.7, 0.3]"},
		{func(o *Options) { o.BandHigh = 1.5 }, "band"},
		{func(o *Options) { o.EveryN = -1 }, "every_n -1"},
		{func(o *Options) { o.MaxFiles = -2 }, "max_files -2"},
		{func(o *Options) { o.MaxFiles = 0 }, "max_files 0"}, // explicit: no hidden default
		{func(o *Options) { o.MaxBytes = -1 }, "max_bytes -1"},
		{func(o *Options) { o.JPEGQuality = 101 }, "jpeg_quality 101"},
		{func(o *Options) { o.JPEGQuality = 0 }, "jpeg_quality 0"},
		{func(o *Options) { o.Queue = -1 }, "queue -1"},
		{func(o *Options) { o.Std = [3]float32{1, 0, 1} }, "std"},
		{func(o *Options) { o.Mean, o.Std = [3]float32{}, [3]float32{} }, "std"},
		{func(o *Options) { o.ColorOrder = "" }, "colour order"},
	} {
		o := withDefaults(Options{Dir: t.TempDir(), EveryN: 1})
		tc.change(&o)
		_, err := New(o, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", o, err, tc.want)
		}
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	crops, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range crops {
		out = append(out, c.Meta.Camera+"/"+string(rune('0'+c.Meta.Frame)))
	}
	slices.Sort(out)
	return out
}

func TestRotation(t *testing.T) {
	capturetest.CheckMats(t)
	dir := t.TempDir()
	c := newCollector(t, Options{Dir: dir, EveryN: 1, MaxFiles: 3})
	o := newOfferer(t, c)
	for i := range 5 {
		o.offer([]string{"a", "b"}[i%2], int64(i), 0, 0.1)
	}
	c.Close()
	// The restart below finds the oldest crops by modification time: make
	// them distinct, in frame order, whatever the file system's resolution.
	for _, p := range must(filepath.Glob(filepath.Join(dir, "*", "*.jpg"))) {
		frame, _, _, _ := parseName(filepath.Base(p))
		at := time.Date(2026, 1, 1, 0, 0, int(frame), 0, time.UTC)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := names(t, dir), []string{"a/2", "a/4", "b/3"}; !slices.Equal(got, want) {
		t.Errorf("after 5 crops with max 3 kept %v, want %v", got, want)
	}
	if s := c.Stats(); s.Saved != 5 || s.Removed != 2 {
		t.Errorf("stats %+v, want 5 saved, 2 removed", s)
	}
	sizes := 0
	for _, p := range must(filepath.Glob(filepath.Join(dir, "*", "*"))) {
		sizes += int(must(os.Stat(p)).Size())
	}
	// Leftovers of an interrupted run: a temporary file and a sidecar without JPEG.
	for _, p := range []string{"a/.000000000009-1-00.jpg.tmp123", "b/000000000008-1-00.json"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}

	// Start-up applies the caps, oldest first: the byte cap leaves 2 of 3
	// (the crops are alike in size).
	c2 := newCollector(t, Options{Dir: dir, EveryN: 1, MaxBytes: int64(sizes * 5 / 6)})
	c2.Close()
	if got, want := names(t, dir), []string{"a/4", "b/3"}; !slices.Equal(got, want) {
		t.Errorf("restart with max_bytes %d of %d kept %v, want %v", sizes*5/6, sizes, got, want)
	}
	left := must(filepath.Glob(filepath.Join(dir, "*", "*")))
	if len(left) != 4 {
		t.Errorf("files left %v, want 2 JPEGs and 2 sidecars", left)
	}
}

// TestOfferNeverBlocks stalls the writer on the data folder's lock (a label
// request waits for it) and checks that Offer drops instead of waiting.
func TestOfferNeverBlocks(t *testing.T) {
	capturetest.CheckMats(t)
	dir, data := t.TempDir(), t.TempDir()
	c := newCollector(t, Options{Dir: dir, EveryN: 1, Queue: 4})
	o := newOfferer(t, c)
	held, err := os.OpenFile(filepath.Join(data, ".labels.lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	o.offer("cam", 0, 0, 0.1)
	labelled := make(chan error, 1)
	go func() {
		_, err := c.Label(context.Background(), data, "cam", 0, dataset.Fake)
		labelled <- err
	}()
	waitForLockWaiter(t, held) // the writer is now inside the label request, waiting for the lock
	var slowest time.Duration
	queued := 0
	for i := 1; i <= 100; i++ {
		start := time.Now()
		if o.offer("cam", int64(i), 0, 0.1) {
			queued++
		}
		slowest = max(slowest, time.Since(start))
	}
	if s := c.Stats(); queued != 4 || s.Dropped != 96 {
		t.Errorf("with the writer stalled %d of 100 queued, %d dropped; want 4 and 96", queued, s.Dropped)
	}
	// The fault guarded against is an Offer blocked until the lock is freed
	// (the end of this test), so a bound far above a GC pause is enough.
	if slowest > time.Second {
		t.Errorf("slowest Offer took %v while the writer was stalled", slowest)
	}
	held.Close() // releases the lock
	if err := <-labelled; err != nil {
		t.Fatalf("label after the stall: %v", err)
	}
	c.Close()
	if s := c.Stats(); s.Saved != 5 {
		t.Errorf("saved %d, want the first and the 4 queued", s.Saved)
	}
	if n := len(must(List(dir))); n != 4 {
		t.Errorf("%d crops left to label, want 4", n)
	}
}

func TestCloseFlushes(t *testing.T) {
	capturetest.CheckMats(t)
	dir := t.TempDir()
	c := newCollector(t, Options{Dir: dir, EveryN: 1, Queue: 64})
	o := newOfferer(t, c)
	for i := range 50 {
		if !o.offer("cam", int64(i), 0, 0.1) {
			t.Fatalf("offer %d not queued", i)
		}
	}
	c.Close()
	if n := len(must(List(dir))); n != 50 {
		t.Errorf("%d crops on disk after Close, want 50", n)
	}
	if o.offer("cam", 51, 0, 0.1) {
		t.Error("Offer after Close queued a crop")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestOfferInput saves what the model saw when Offer gets Input instead of Crop.
func TestOfferInput(t *testing.T) {
	capturetest.CheckMats(t)
	frame := videoFrame(t)
	pp, err := preprocess.New(preprocess.Params{Size: 64, Mean: imagenet.Mean, Std: imagenet.Std, ColorOrder: imagenet.ColorOrder})
	if err != nil {
		t.Fatal(err)
	}
	in := make([]float32, pp.Len())
	err = pp.Fill(frame, image.Rect(40, 20, 200, 180), in)
	pp.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Offer with Input instead of Crop saves what the model saw.
	dir := t.TempDir()
	c := newCollector(t, Options{Dir: dir, EveryN: 1})
	if !c.Offer(Face{Camera: "cam", Frame: 3, Input: in, PFake: 0.2}) {
		t.Fatal("not queued")
	}
	if c.Offer(Face{Camera: "cam", Frame: 4, Input: in[:7]}) {
		t.Error("a bad input was queued")
	}
	if c.Offer(Face{Camera: "../x", Frame: 5, Input: in}) {
		t.Error("a bad camera name was queued")
	}
	c.Close()
	crops := must(List(dir))
	if len(crops) != 1 {
		t.Fatalf("crops %v, want 1", crops)
	}
	checkJPEG(t, crops[0].Path, 64, 64)
	if s := c.Stats(); s.Failed != 2 {
		t.Errorf("stats %+v, want 2 failed", s)
	}
}

// TestOfferNotChosenAllocates nothing: most faces take this path, per frame.
func TestOfferNotChosenAllocates(t *testing.T) {
	capturetest.CheckMats(t)
	c := newCollector(t, Options{Dir: t.TempDir(), BandLow: 0.4, BandHigh: 0.6, EveryN: 1 << 30})
	o := newOfferer(t, c)
	roi := o.frame.Region(image.Rect(0, 0, 64, 64))
	defer roi.Close()
	f := Face{Camera: "cam", PFake: 0.9, Crop: roi}
	if n := testing.AllocsPerRun(1000, func() {
		if c.Offer(f) {
			t.Fatal("chosen")
		}
	}); n != 0 {
		t.Errorf("Offer of a face not chosen allocates %v times", n)
	}
}

// BenchmarkOffer saves chosen faces (128×128 model input) one at a time:
// ns/op is the whole save (decode, JPEG, two files), offer-ns/op the part the
// pipeline waits for.
func BenchmarkOffer(b *testing.B) {
	c, err := New(withDefaults(Options{Dir: b.TempDir(), EveryN: 1, MaxFiles: 100}), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	in := make([]float32, 3*128*128)
	for i := range in {
		in[i] = float32(i%251)/125 - 1
	}
	var offer time.Duration
	for i := uint64(1); b.Loop(); i++ {
		start := time.Now()
		if !c.Offer(Face{Camera: "cam", Frame: int64(i), Input: in}) {
			b.Fatal("dropped")
		}
		offer += time.Since(start)
		for c.Stats().Saved < i {
			runtime.Gosched()
		}
	}
	b.ReportMetric(float64(offer.Nanoseconds())/float64(b.N), "offer-ns/op")
}

// TestWriteFailure: a crop that cannot be written is counted, and the
// collector goes on and closes.
func TestWriteFailure(t *testing.T) {
	capturetest.CheckMats(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "blocked"), []byte("a file where the camera folder goes"), 0o640); err != nil {
		t.Fatal(err)
	}
	logs := new(testenv.SyncBuffer)
	c, err := New(withDefaults(Options{Dir: dir, EveryN: 1, Queue: 8}), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	o := newOfferer(t, c)
	for i := range 5 {
		o.offer("blocked", int64(i), 0, 0.5)
	}
	o.offer("ok", 9, 0, 0.5)
	c.Close()
	if s := c.Stats(); s.Saved != 1 || s.Failed != 5 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 1 saved and 5 failed", s)
	}
	// A full disk fails every crop: one warning, not one per face.
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for 5 failures in a row, want 1:\n%s", n, logs)
	}
}

// waitForLockWaiter returns once another file description waits for the
// flock on f: the kernel lists blocked waiters in /proc/locks as "->" lines
// naming the file's device:inode.
func waitForLockWaiter(t *testing.T, f *os.File) {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	inode := ":" + strconv.FormatUint(st.Sys().(*syscall.Stat_t).Ino, 10)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) > 6 && fields[1] == "->" && fields[2] == "FLOCK" && strings.HasSuffix(fields[6], inode) {
				return
			}
		}
		time.Sleep(time.Millisecond) // polls the kernel's state, no guess at timing
	}
	t.Fatalf("nothing waited for the lock on %s within 10s", f.Name())
}

// TestHoldKeepsReviewedCrops: a crop held for review (the page holds those
// it shows) stays through rotation, which removes the next oldest instead;
// once the hold has passed it goes like the others.
func TestHoldKeepsReviewedCrops(t *testing.T) {
	capturetest.CheckMats(t)
	dir := t.TempDir()
	c := newCollector(t, Options{Dir: dir, EveryN: 1, MaxFiles: 3})
	o := newOfferer(t, c)
	for i := range 3 {
		o.offer("a", int64(i), 0, 0.1)
	}
	if !poll.Until(10*time.Second, func() bool { return c.Stats().Saved == 3 }) {
		t.Fatalf("stats %+v", c.Stats())
	}
	oldest := must(filepath.Glob(filepath.Join(dir, "a", "000000000000-*.jpg")))
	c.Hold(oldest, time.Now().Add(time.Hour))
	for i := 3; i < 5; i++ {
		o.offer("a", int64(i), 0, 0.1)
	}
	if !poll.Until(10*time.Second, func() bool { return c.Stats().Saved == 5 }) {
		t.Fatalf("stats %+v", c.Stats())
	}
	if got, want := names(t, dir), []string{"a/0", "a/3", "a/4"}; !slices.Equal(got, want) {
		t.Errorf("with frame 0 held, rotation kept %v, want %v", got, want)
	}
	c.Hold(oldest, time.Now().Add(-time.Second)) // the hold has passed
	o.offer("a", 5, 0, 0.1)
	c.Close()
	if got, want := names(t, dir), []string{"a/3", "a/4", "a/5"}; !slices.Equal(got, want) {
		t.Errorf("after the hold, rotation kept %v, want %v", got, want)
	}
}
