// Package capturetest gives tests in any package a short video with a real face.
package capturetest

import (
	"errors"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// Megamind is OpenCV's sample clip with a face (Debian package opencv-doc).
const Megamind = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"

// Clip returns a video with a face: ../shared/data/videos/real/ffpp_519.mp4
// when the shared data is present, else a 30-frame MJPG .avi written into
// t.TempDir() from Megamind.avi (or synthetic frames without opencv-doc).
func Clip(t testing.TB) string {
	t.Helper()
	dir, _ := testenv.SharedDir(t)
	if p := filepath.Join(dir, "data", "videos", "real", "ffpp_519.mp4"); exists(p) {
		return p
	}
	out := filepath.Join(t.TempDir(), "clip.avi")
	if err := Write(out, 30, 25); err != nil {
		t.Fatalf("write test clip: %v", err)
	}
	return out
}

// Write writes an MJPG .avi of n frames at fps: Megamind.avi's first frames
// when installed, else synthetic 320x240 frames with a moving disc.
func Write(path string, n int, fps float64) error {
	var src *gocv.VideoCapture
	w, h := 320, 240
	if exists(Megamind) {
		vc, err := gocv.VideoCaptureFile(Megamind)
		if err == nil {
			src = vc
			defer src.Close()
			w, h = int(vc.Get(gocv.VideoCaptureFrameWidth)), int(vc.Get(gocv.VideoCaptureFrameHeight))
		} else if vc != nil {
			vc.Close()
		}
	}
	vw, err := gocv.VideoWriterFile(path, "MJPG", fps, w, h, true)
	if err != nil {
		return err
	}
	defer vw.Close()
	img := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer func() { img.Close() }()
	// Megamind opens on a black frame: start at the first with a picture.
	for skipped := 0; src != nil && skipped < 10; skipped++ {
		if !src.Read(&img) || img.Empty() {
			return errors.New("read " + Megamind)
		}
		if m := img.Mean(); m.Val1+m.Val2+m.Val3 > 3 {
			break
		}
	}
	first := src != nil
	for i := 0; i < n; i++ {
		if first {
			first = false // img already holds it
		} else if src != nil && (!src.Read(&img) || img.Empty()) {
			src = nil // the sample ran out: synthetic frames from here on
			img.Close()
			img = gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
		}
		if src == nil {
			img.SetTo(gocv.NewScalar(40, 40, 40, 0))
			gocv.Circle(&img, image.Pt(40+i*(w-80)/max(n, 1), h/2), h/5, color.RGBA{200, 180, 160, 0}, -1)
		}
		if err := vw.Write(img); err != nil {
			return err
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
