package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/daemon/web"
	"github.com/deepfaked/deepfaked/internal/poll"
)

func TestVerdictFrame(t *testing.T) {
	for payload, want := range map[string]int64{
		`{"device":"d","camera":"c","frame":41,"run":"r"}`: 41,
		`{"device":"d","camera":"c","frame":0,"faces":[]}`: 0,
		`{"device":"d","camera":"c"}`:                      -1,
		`{"frame":"x"}`:                                    -1,
		`{"frame":99999999999999999999}`:                   -1,
	} {
		if got := verdictFrame([]byte(payload)); got != want {
			t.Errorf("%s: %d, want %d", payload, got, want)
		}
	}
}

func verdictJSON(frame int64) []byte {
	return fmt.Appendf(nil, `{"device":"d","camera":"cam","frame":%d,"run":"r","seq":1,"ts":"2026-12-01T00:00:00Z","label":"fake","p_fake":0.9,"threshold":0.5,`+
		`"faces":[{"box":[10,20,30,30],"p_fake":0.9,"label":"fake","track":3}]}`, frame)
}

// TestLiveCam: nothing is copied until the page asks; then a frame at most
// every liveEvery, with the verdict of that frame (not another's) drawn on it.
func TestLiveCam(t *testing.T) {
	capturetest.CheckMats(t)
	v := newLiveView([]string{"cam"})
	defer v.close()
	c := v.cams["cam"]
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), 100, 120, gocv.MatTypeCV8UC3)
	defer img.Close()
	f := &capture.Frame{Mat: img, Index: 7, Time: time.Now()}

	c.offer(f)
	if _, _, ok := v.Frame("cam"); ok {
		t.Fatal("a frame copied while nobody watched")
	}
	if _, _, ok := v.Frame("other"); ok {
		t.Fatal("a frame of an unknown camera")
	}
	c.offer(f) // watched now
	c.verdictOf(verdictJSON(6))
	plain, idx, ok := v.Frame("cam")
	if !ok || idx != 7 || len(plain) == 0 {
		t.Fatalf("frame %d %v", idx, ok)
	}
	f8 := &capture.Frame{Mat: img, Index: 8}
	c.offer(f8) // within liveEvery of the last copy: not copied
	if _, idx, _ := v.Frame("cam"); idx != 7 {
		t.Fatalf("copied again within %s: frame %d", liveEvery, idx)
	}
	c.verdictOf(verdictJSON(7))
	drawn, _, _ := v.Frame("cam")
	m, err := gocv.IMDecode(drawn, gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	px := m.GetVecbAt(20, 25) // on the box's top edge (BGR)
	if px[2] < 150 || px[1] > 100 {
		t.Fatalf("box edge pixel %v, want red", px)
	}
	if again, _, _ := v.Frame("cam"); &again[0] != &drawn[0] {
		t.Fatal("drawn again for the same frame and verdict")
	}
	c.nextCopy = 0
	c.offer(f8)
	if _, idx, _ := v.Frame("cam"); idx != 8 {
		t.Fatalf("frame %d after the throttle, want 8", idx)
	}
}

// BenchmarkLiveOffer is the live view's cost on a camera's reader goroutine
// per frame: unwatched (an atomic load), and watched (a 720p copy every
// liveEvery; per frame at 25 fps, 1/12 of a copy).
func BenchmarkLiveOffer(b *testing.B) {
	img := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer img.Close()
	f := &capture.Frame{Mat: img}
	for _, watched := range []bool{false, true} {
		b.Run(fmt.Sprintf("watched=%v", watched), func(b *testing.B) {
			v := newLiveView([]string{"cam"})
			defer v.close()
			c := v.cams["cam"]
			if watched {
				c.watchUntil.Store(time.Now().Add(time.Hour).UnixNano())
			}
			for i := 0; b.Loop(); i++ {
				if watched && i%12 == 0 { // 25 fps: a copy every 12 frames or so
					c.nextCopy = 0
				}
				f.Index = int64(i)
				c.offer(f)
			}
		})
	}
}

// TestPastEvents: snapshots of earlier runs become the page's first events,
// oldest first, with the ids the pipeline gives events.
func TestPastEvents(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now().Add(-time.Hour)
	for i, name := range []string{"door/20261130T224553Z-QF4C2XVA-5.jpg", "door/20261201T010000Z-AAAAAAAA-1.jpg", "yard/20261130T224553Z-QF4C2XVA-7.jpg",
		"yard/notes.txt", "yard/x.jpg", "door/-3.jpg"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("jpeg"), 0o644); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	l := web.NewEventLog(10)
	pastEvents(l, dir, slog.New(slog.DiscardHandler))
	var ids []string
	for _, e := range l.List(web.EventFilter{}) {
		ids = append(ids, e.ID)
	}
	want := "20261130T224553Z-QF4C2XVA-yard-7 20261201T010000Z-AAAAAAAA-door-1 20261130T224553Z-QF4C2XVA-door-5"
	if strings.Join(ids, " ") != want {
		t.Fatalf("%v, want %s", ids, want)
	}
	pastEvents(l, filepath.Join(dir, "none"), slog.New(slog.DiscardHandler)) // no folder yet: nothing
}

// TestLiveNext: a stream gets every analysed frame (no liveEvery throttle
// while it waits), each once its verdict has come, or without the verdict
// past liveVerdictWait; it returns when its context ends.
func TestLiveNext(t *testing.T) {
	capturetest.CheckMats(t)
	v := newLiveView([]string{"cam"})
	defer v.close()
	c := v.cams["cam"]
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), 100, 120, gocv.MatTypeCV8UC3)
	defer img.Close()
	type got struct {
		index int64
		ok    bool
	}
	next := func(ctx context.Context, after int64) <-chan got {
		ch := make(chan got, 1)
		go func() { _, i, ok := v.Next(ctx, "cam", after); ch <- got{i, ok} }()
		return ch
	}
	ctx := context.Background()
	first := next(ctx, -1)
	if !poll.Until(5*time.Second, func() bool { return c.streamUntil.Load() > time.Now().UnixNano() }) {
		t.Fatal("Next did not ask for every frame")
	}
	c.offer(&capture.Frame{Mat: img, Index: 7})
	c.verdictOf(verdictJSON(7))
	if g := <-first; !g.ok || g.index != 7 {
		t.Fatalf("first frame %+v, want 7", g)
	}
	second := next(ctx, 7)
	c.offer(&capture.Frame{Mat: img, Index: 8}) // within liveEvery of 7: copied, a stream watches
	start := time.Now()
	if g := <-second; !g.ok || g.index != 8 {
		t.Fatalf("second frame %+v, want 8", g)
	} else if d := time.Since(start); d < liveVerdictWait/2 {
		t.Errorf("frame 8 sent after %v without its verdict; want it to wait for it about %v", d, liveVerdictWait)
	}
	cctx, cancel := context.WithCancel(ctx)
	third := next(cctx, 8)
	cancel()
	if g := <-third; g.ok {
		t.Fatalf("after cancel: %+v", g)
	}
}
