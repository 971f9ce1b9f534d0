package teach

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/train/collect"
)

func newTeacher(t *testing.T) (*Teacher, string) {
	dir := t.TempDir()
	return New(Options{Dir: dir, Collect: collect.Options{MaxFiles: 1, JPEGQuality: 90,
		Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}, ColorOrder: "RGB"}}), dir
}

// feed offers faces of cam and of another camera, as the pipeline would,
// until stop is closed; it returns how many were taken.
func feed(tc *Teacher, cam string, stop <-chan struct{}) *atomic.Int64 {
	taken := &atomic.Int64{}
	in := make([]float32, 3*64*64)
	for i := range in {
		in[i] = float32(i%97)/50 - 1
	}
	go func() {
		for frame := int64(1); ; frame++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, c := range []string{cam, "other"} {
				if tc.Offer(collect.Face{Camera: c, Frame: frame, TS: time.Now(), Input: in}) {
					taken.Add(1)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return taken
}

// TestCollect: n faces of the camera taught, every every-th one, become a
// data folder of real faces in Groups runs; faces of other cameras and
// faces after the n-th are not taken.
func TestCollect(t *testing.T) {
	capturetest.CheckMats(t)
	tc, dir := newTeacher(t)
	stop := make(chan struct{})
	defer close(stop)
	taken := feed(tc, "cam", stop)
	var last int
	data, err := tc.Collect(t.Context(), "cam", 40, 3, func(saved int) { last = saved })
	if err != nil {
		t.Fatal(err)
	}
	if last != 40 || taken.Load() != 40 {
		t.Errorf("progress ended at %d, %d faces taken; want 40", last, taken.Load())
	}
	if !strings.HasPrefix(data, dir) {
		t.Errorf("data folder %s outside %s", data, dir)
	}
	f, err := dataset.Load(data)
	if !errors.Is(err, dataset.ErrNoFake) {
		t.Fatalf("dataset.Load: %v, want the real-only folder with ErrNoFake", err)
	}
	groups := map[string]int{}
	for _, s := range f.Samples {
		if s.Label != dataset.Real || !strings.HasPrefix(s.Identity, "cam#") {
			t.Errorf("sample %+v", s)
		}
		groups[s.Identity]++
	}
	if len(f.Samples) != 40 || len(groups) != Groups || len(f.Skipped) != 0 {
		t.Errorf("%d samples in %d groups (%d skipped), want 40 in %d", len(f.Samples), len(groups), len(f.Skipped), Groups)
	}
	left, err := collect.List(filepath.Join(filepath.Dir(data), "collect"))
	if err != nil || len(left) != 0 {
		t.Errorf("crops left in the session's collect folder: %v %v", left, err)
	}
	if tc.Offer(collect.Face{Camera: "cam", Frame: 1 << 40, Input: make([]float32, 3*64*64)}) {
		t.Error("a face was taken after the session")
	}
}

// TestCollectOneAtATime: a second session is refused while one collects; a
// cancelled session returns the context's error and leaves no files.
func TestCollectOneAtATime(t *testing.T) {
	capturetest.CheckMats(t)
	tc, dir := newTeacher(t)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := tc.Collect(ctx, "quiet", 40, 1, func(int) {})
		errc <- err
	}()
	if !poll.Until(10*time.Second, func() bool {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		return tc.s != nil
	}) {
		t.Fatal("the first session never started")
	}
	if _, err := tc.Collect(t.Context(), "cam", 40, 1, func(int) {}); err == nil || !strings.Contains(err.Error(), "one at a time") {
		t.Errorf("second session: %v", err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled session: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if _, err := tc.Collect(t.Context(), "cam", Groups-1, 1, func(int) {}); err == nil || !strings.Contains(err.Error(), "at least") {
		t.Errorf("too few faces: %v", err)
	}
}
