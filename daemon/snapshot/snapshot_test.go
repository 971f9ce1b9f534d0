package snapshot_test

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/snapshot"
)

func opts(dir string) snapshot.Options {
	return snapshot.Options{Dir: dir, MaxCount: 3, MaxAge: time.Hour, Queue: 4,
		Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}, ColorOrder: preprocess.RGB}
}

// grey is a 3×S×S model input of one grey level.
func grey(s int, v float32) []float32 {
	in := make([]float32, 3*s*s)
	for i := range in {
		in[i] = v
	}
	return in
}

// TestSaveAndPrune: snapshots are JPEGs of the model input at Path, handed
// to Published; beyond MaxCount the oldest go, and so do files older than
// MaxAge and temporary files an interrupted write left; New prunes too.
func TestSaveAndPrune(t *testing.T) {
	capturetest.CheckMats(t)
	dir := t.TempDir()
	// Left by an earlier run: one too old, one interrupted write.
	old := filepath.Join(dir, "cam", "old-1.jpg")
	if err := os.MkdirAll(filepath.Dir(old), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, filepath.Join(dir, "cam", ".r-2.jpg.tmp123")} {
		if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		published []string
	)
	o := opts(dir)
	o.Published = func(camera string, jpeg []byte) {
		mu.Lock()
		defer mu.Unlock()
		img, err := gocv.IMDecode(jpeg, gocv.IMReadColor)
		if err != nil || img.Empty() {
			t.Errorf("published bytes are not a JPEG: %v", err)
		}
		img.Close()
		published = append(published, camera)
	}
	s, err := snapshot.New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "cam", "*")); len(left) != 0 {
		t.Fatalf("New left %v; want the old snapshot and the temporary file gone", left)
	}
	var paths []string
	for track := range int64(5) {
		p := s.Path("cam", "run", track)
		paths = append(paths, p)
		if !s.Save("cam", p, grey(32, float32(track)/5)) {
			t.Fatalf("save %d dropped", track)
		}
		s.Close() // waits for the writer
		// Distinct modification times, oldest first, as an hour of events makes.
		at := time.Now().Add(time.Duration(track-5) * time.Minute)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		if s, err = snapshot.New(o, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	left, _ := filepath.Glob(filepath.Join(dir, "cam", "*.jpg"))
	slices.Sort(left)
	if want := paths[2:]; !slices.Equal(left, want) {
		t.Fatalf("left %v; want the newest 3 %v", left, want)
	}
	img := gocv.IMRead(left[2], gocv.IMReadColor)
	defer img.Close()
	if img.Empty() || img.Rows() != 32 || img.Cols() != 32 {
		t.Errorf("%s: %dx%d, want a 32x32 JPEG", left[2], img.Cols(), img.Rows())
	}
	if want := []string{"cam", "cam", "cam", "cam", "cam"}; !slices.Equal(published, want) {
		t.Errorf("published %v, want one per save", published)
	}
}

// TestSaveNeverWaits: with the writer behind, saves are dropped and counted.
func TestSaveNeverWaits(t *testing.T) {
	o := opts(t.TempDir())
	o.Queue = 1
	block := make(chan struct{})
	o.Published = func(string, []byte) { <-block }
	s, err := snapshot.New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := grey(16, 0)
	took := 0
	start := time.Now()
	for i := range int64(10) {
		if s.Save("cam", s.Path("cam", "run", i), in) {
			took++
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("10 saves took %v with the writer blocked", d)
	}
	if took > 2 || s.Dropped() != int64(10-took) {
		t.Errorf("took %d, dropped %d; want at most 2 taken (one writing, one queued) and the rest counted", took, s.Dropped())
	}
	close(block)
	s.Close()
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*snapshot.Options)
	}{
		{"no folder", func(o *snapshot.Options) { o.Dir = "" }},
		{"count 0", func(o *snapshot.Options) { o.MaxCount = 0 }},
		{"negative age", func(o *snapshot.Options) { o.MaxAge = -time.Second }},
		{"queue 0", func(o *snapshot.Options) { o.Queue = 0 }},
	} {
		o := opts(t.TempDir())
		tc.edit(&o)
		if _, err := snapshot.New(o, nil); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
