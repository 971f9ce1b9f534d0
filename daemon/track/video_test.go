package track

import (
	"context"
	"errors"
	"image"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// Tests on real video: the shared clips, faces found by the project's own
// capture and YuNet detector (Haar finds a second, false face in many of
// ffpp_519's frames, so it cannot stand for a one-face clip). They skip when
// ../shared is absent.

// videoFrames bounds each clip: 6 s at 25 fps is plenty of motion and keeps
// the tests to seconds.
const videoFrames = 150

// detector returns YuNet on a one-thread engine, closed at the end of the test.
func detector(t *testing.T) face.Detector {
	t.Helper()
	model := testenv.SharedFile(t, "models/face/yunet.onnx")
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	det, err := face.New(face.Options{Kind: face.YuNet, Model: model, MinSize: 32, Score: 0.6, Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close() })
	return det
}

// detect reads path through capture (every frame, or fps of them) up to
// stream frame videoFrames and returns each analysed frame's faces.
func detect(t *testing.T, det face.Detector, path string, fps float64) (frames []int64, boxes [][]image.Rectangle) {
	t.Helper()
	cam, err := capture.Open(context.Background(), capture.Options{Name: "test", Source: path, FPS: fps}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	var found []face.Box
	for {
		f, err := cam.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Index >= videoFrames {
			cam.Release(f)
			break
		}
		found, err = det.Detect(f.Mat, found)
		frames = append(frames, f.Index)
		cam.Release(f)
		if err != nil {
			t.Fatal(err)
		}
		var bs []image.Rectangle
		for _, b := range found {
			bs = append(bs, b.Rect)
		}
		boxes = append(boxes, bs)
	}
	if len(frames) == 0 {
		t.Fatalf("%s: no frames read", path)
	}
	return frames, boxes
}

// checkTracks runs a tracker over the detections and checks, for each
// person (who(box) says which, or -1 for a box that is no one's), that their
// track id changes only where the detections say a new appearance starts:
// after more than MaxMissed analysed frames without them. No two people
// share an id. It returns each person's ids in order.
func checkTracks(t *testing.T, o Options, frames []int64, boxes [][]image.Rectangle, people int, who func(image.Rectangle) int) [][]int64 {
	t.Helper()
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, 8)
	var ch []Change
	faces := make([]Face, 0, 8)
	lastSeen := make([]int, people) // analysed frame index, -1 for never
	for i := range lastSeen {
		lastSeen[i] = -1
	}
	current := make([]int64, people) // the person's id in their current appearance
	out := make([][]int64, people)
	owner := map[int64]int{}
	started := 0
	for k, bs := range boxes {
		faces = faces[:0]
		for _, b := range bs {
			faces = append(faces, Face{Box: b, PFake: 0.1})
		}
		ch = tr.Update(frames[k], time.Time{}, faces, 0.5, ids, ch)
		for _, c := range ch {
			if c.Kind == Started {
				started++
			}
		}
		for i, b := range bs {
			p := who(b)
			if p < 0 {
				continue
			}
			id := ids[i]
			if prev, ok := owner[id]; ok && prev != p {
				t.Fatalf("frame %d: track %d went from person %d to person %d", frames[k], id, prev, p)
			}
			owner[id] = p
			newAppearance := lastSeen[p] < 0 || k-lastSeen[p]-1 > o.MaxMissed
			switch {
			case newAppearance && id == current[p]:
				t.Errorf("frame %d: person %d back after %d frames unseen kept track %d (MaxMissed %d)", frames[k], p, k-lastSeen[p]-1, id, o.MaxMissed)
			case !newAppearance && id != current[p]:
				t.Fatalf("frame %d: person %d unseen for %d frames (MaxMissed %d) changed track %d -> %d", frames[k], p, k-lastSeen[p]-1, o.MaxMissed, current[p], id)
			}
			if newAppearance {
				out[p] = append(out[p], id)
			}
			current[p], lastSeen[p] = id, k
		}
	}
	appearances := 0
	for _, ids := range out {
		appearances += len(ids)
	}
	if started != appearances {
		t.Errorf("%d tracks started for %d appearances", started, appearances)
	}
	return out
}

// hide removes the faces of analysed frames [from, from+n): a detector's
// misses, placed where the test wants them.
func hide(boxes [][]image.Rectangle, from, n int) [][]image.Rectangle {
	out := append([][]image.Rectangle(nil), boxes...)
	for k := from; k < from+n && k < len(out); k++ {
		out[k] = nil
	}
	return out
}

// One face per clip: one track across the clip, whatever the frame rate;
// a gap of MaxMissed frames keeps it and one frame more starts another.
func TestVideoOneFace(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	det := detector(t)
	for _, clip := range []string{"real/ffpp_519.mp4", "fake/ffpp_neuraltextures_004_982.mp4"} {
		path := testenv.SharedFile(t, filepath.Join("data", "videos", clip))
		for _, fps := range []float64{0, 5} {
			frames, boxes := detect(t, det, path, fps)
			n := len(frames)
			for k, bs := range boxes {
				if len(bs) > 1 {
					t.Fatalf("%s frame %d: %d faces %v: not a one-face clip for this detector", clip, frames[k], len(bs), bs)
				}
			}
			o := opts()
			o.MaxMissed = 3
			for _, tc := range []struct {
				name  string
				boxes [][]image.Rectangle
				want  int // appearances
			}{
				{"as detected", boxes, -1},
				{"gap of MaxMissed", hide(boxes, n/4, o.MaxMissed), 1},
				{"gap of MaxMissed+1", hide(boxes, n/2, o.MaxMissed+1), 2},
			} {
				out := checkTracks(t, o, frames, tc.boxes, 1, func(image.Rectangle) int { return 0 })
				if tc.want >= 0 && len(out[0]) != tc.want {
					t.Errorf("%s at %v fps, %s: tracks %v, want %d", clip, fps, tc.name, out[0], tc.want)
				}
				t.Logf("%s at %v fps (%d frames), %s: tracks %v", clip, fps, n, tc.name, out[0])
			}
		}
	}
}

// sideBySide writes the first videoFrames frames of left and right next to
// each other (right scaled to left's height) as an MJPG .avi.
func sideBySide(t *testing.T, left, right string) (path string, split int) {
	t.Helper()
	l, err := gocv.VideoCaptureFile(left)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, err := gocv.VideoCaptureFile(right)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, b, bs, both := gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer func() {
		for _, m := range []*gocv.Mat{&a, &b, &bs, &both} {
			m.Close()
		}
	}()
	path = filepath.Join(t.TempDir(), "two.avi")
	var w *gocv.VideoWriter
	for k := 0; k < videoFrames && l.Read(&a) && r.Read(&b) && !a.Empty() && !b.Empty(); k++ {
		h := a.Rows()
		gocv.Resize(b, &bs, image.Pt(b.Cols()*h/b.Rows(), h), 0, 0, gocv.InterpolationArea)
		gocv.Hconcat(a, bs, &both)
		if w == nil {
			if w, err = gocv.VideoWriterFile(path, "MJPG", 25, both.Cols(), both.Rows(), true); err != nil {
				t.Fatal(err)
			}
			defer w.Close()
		}
		if err := w.Write(both); err != nil {
			t.Fatal(err)
		}
	}
	if w == nil {
		t.Fatalf("no frames from %s and %s", left, right)
	}
	return path, a.Cols()
}

// Two people side by side: two tracks, left and right, that never swap.
func TestVideoTwoFaces(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	det := detector(t)
	left := testenv.SharedFile(t, "data/videos/real/ffpp_519.mp4")
	right := testenv.SharedFile(t, "data/videos/fake/ffpp_neuraltextures_004_982.mp4")
	path, split := sideBySide(t, left, right)
	for _, fps := range []float64{0, 5} {
		frames, boxes := detect(t, det, path, fps)
		both := 0
		for _, bs := range boxes {
			if len(bs) == 2 {
				both++
			}
		}
		if both < len(boxes)*9/10 {
			t.Fatalf("at %v fps both faces found in only %d of %d frames", fps, both, len(boxes))
		}
		side := func(b image.Rectangle) int {
			if (b.Min.X+b.Max.X)/2 < split {
				return 0
			}
			return 1
		}
		out := checkTracks(t, opts(), frames, boxes, 2, side)
		if len(out[0]) != 1 || len(out[1]) != 1 {
			t.Errorf("at %v fps: left tracks %v, right %v: want one each", fps, out[0], out[1])
		}
		t.Logf("at %v fps (%d frames, both faces in %d): left %v, right %v", fps, len(frames), both, out[0], out[1])
	}
}
