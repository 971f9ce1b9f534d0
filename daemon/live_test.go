package daemon

import (
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
