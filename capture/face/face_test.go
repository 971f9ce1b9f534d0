package face

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/geom"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func newEngine(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// frameAt reads frame k of a video; the caller closes it.
func frameAt(t testing.TB, path string, k int) gocv.Mat {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	for i := 0; i <= k; i++ {
		if !vc.Read(&m) || m.Empty() {
			m.Close()
			t.Fatalf("%s has no frame %d", path, k)
		}
	}
	return m
}

// detectors makes every kind; yunet and ultraface only with the shared models.
func detectors(t testing.TB) map[string]Detector {
	t.Helper()
	out := map[string]Detector{}
	add := func(o Options) {
		d, err := New(o)
		if err != nil {
			t.Fatalf("New(%+v): %v", o, err)
		}
		t.Cleanup(func() { d.Close() })
		out[o.Kind] = d
	}
	add(Options{Kind: Haar, MinSize: 32})
	add(Options{Kind: None})
	if haveShared(t) {
		e := newEngine(t)
		add(Options{Kind: YuNet, Model: testenv.SharedFile(t, "models/face/yunet.onnx"), MinSize: 32, Score: 0.6, Engine: e})
		add(Options{Kind: UltraFace, Model: testenv.SharedFile(t, "models/face/ultraface-rfb-320.onnx"), MinSize: 32, Score: 0.7, Engine: e})
	}
	return out
}

type scene struct {
	name  string
	path  string
	frame int
	faces int // at least this many faces
}

func scenes(t testing.TB) []scene {
	s := []scene{}
	if _, err := os.Stat(capturetest.Megamind); err == nil {
		s = append(s, scene{"megamind", capturetest.Megamind, 30, 1})
	}
	if haveShared(t) {
		dir := testenv.Shared(t)
		s = append(s,
			scene{"ffpp_004", filepath.Join(dir, "data/videos/real/ffpp_004.mp4"), 0, 1},
			scene{"ffpp_519", filepath.Join(dir, "data/videos/real/ffpp_519.mp4"), 0, 1},
			scene{"dfdc portrait", filepath.Join(dir, "data/videos/real/dfdc_lynaeydofd.mp4"), 0, 1},
		)
	}
	if len(s) == 0 {
		t.Skip("no video with a face here: install opencv-doc or provide ../shared")
	}
	return s
}

func TestDetectorsFindFaces(t *testing.T) {
	capturetest.CheckMats(t)
	dets := detectors(t)
	for _, sc := range scenes(t) {
		t.Run(sc.name, func(t *testing.T) {
			img := frameAt(t, sc.path, sc.frame)
			defer img.Close()
			frame := image.Rect(0, 0, img.Cols(), img.Rows())
			found := map[string][]Box{}
			for _, kind := range Kinds {
				d, ok := dets[kind]
				if !ok {
					continue
				}
				boxes, err := d.Detect(img, nil)
				if err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
				t.Logf("%s: %v", kind, boxes)
				if len(boxes) < sc.faces {
					t.Errorf("%s found %d faces, want >= %d", kind, len(boxes), sc.faces)
					continue
				}
				if !slices.IsSortedFunc(boxes, func(a, b Box) int { return int(b.Score*1e6) - int(a.Score*1e6) }) {
					t.Errorf("%s: boxes not sorted by score: %v", kind, boxes)
				}
				for _, b := range boxes {
					if !b.Rect.In(frame) || b.Rect.Empty() {
						t.Errorf("%s: box %v outside frame %v", kind, b.Rect, frame)
					}
				}
				b := boxes[0].Rect
				if kind == None {
					if b != frame {
						t.Errorf("none: box %v, want the frame %v", b, frame)
					}
					continue
				}
				short := min(frame.Dx(), frame.Dy())
				if b.Dx() < short/20 || b.Dx() > short*9/10 || b.Dy() > short*9/10 ||
					float64(b.Dy())/float64(b.Dx()) < 0.7 || float64(b.Dy())/float64(b.Dx()) > 2 {
					t.Errorf("%s: implausible face box %v in a %v frame", kind, b, frame.Size())
				}
				found[kind] = boxes
			}
			// Independent detectors must agree: another one finds each one's best face.
			for kind, boxes := range found {
				c := boxes[0].Rect.Min.Add(boxes[0].Rect.Max).Div(2)
				confirmed := len(found) == 1
				for other, obs := range found {
					for _, o := range obs {
						confirmed = confirmed || (other != kind && c.In(o.Rect))
					}
				}
				if !confirmed {
					t.Errorf("no other detector confirms %s's best face %v: %v", kind, boxes[0].Rect, found)
				}
			}
		})
	}
}

func TestSeveralFaces(t *testing.T) {
	capturetest.CheckMats(t)
	p := testenv.SharedFile(t, "data/videos/real/hamilton_clip.mp4")
	d := detectors(t)[YuNet]
	img := frameAt(t, p, 225) // a group shot: six people facing the camera
	defer img.Close()
	boxes, err := d.Detect(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) < 4 {
		t.Fatalf("yunet found %d faces in hamilton_clip, want several: %v", len(boxes), boxes)
	}
	for i, a := range boxes {
		for _, b := range boxes[i+1:] {
			if geom.IoU(a.Rect, b.Rect) > float64(nms) {
				t.Errorf("boxes %v and %v overlap after NMS", a.Rect, b.Rect)
			}
		}
		// The five points sit in the face as a face has them: inside its
		// box, the eyes apart and above the nose, the nose above the mouth.
		lm := a.Landmarks
		in := func(p [2]float32) bool { return image.Pt(int(p[0]), int(p[1])).In(a.Rect) }
		eyesY, mouthY := (lm[0][1]+lm[1][1])/2, (lm[3][1]+lm[4][1])/2
		if !a.HasLandmarks || !in(lm[0]) || !in(lm[1]) || !in(lm[2]) || !in(lm[3]) || !in(lm[4]) ||
			!(lm[0][0] < lm[1][0] && lm[3][0] < lm[4][0] && eyesY < lm[2][1] && lm[2][1] < mouthY) {
			t.Errorf("face %v: landmarks %v (%v) are not a face's", a.Rect, lm, a.HasLandmarks)
		}
	}
}

func TestNoFaceInBlankFrame(t *testing.T) {
	capturetest.CheckMats(t)
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 480, 640, gocv.MatTypeCV8UC3)
	defer img.Close()
	buf := make([]Box, 0, 8)
	for kind, d := range detectors(t) {
		boxes, err := d.Detect(img, buf)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if kind != None && len(boxes) != 0 {
			t.Errorf("%s found faces in a grey frame: %v", kind, boxes)
		}
		if &boxes[:1][0] != &buf[:1][0] {
			t.Errorf("%s did not reuse dst", kind)
		}
	}
	empty := gocv.NewMat()
	defer empty.Close()
	for kind, d := range detectors(t) {
		if boxes, err := d.Detect(empty, nil); err != nil || len(boxes) != 0 {
			t.Errorf("%s on an empty Mat: %v, %v", kind, boxes, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	capturetest.CheckMats(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.onnx")
	if err := os.WriteFile(corrupt, []byte("not an onnx model"), 0o600); err != nil {
		t.Fatal(err)
	}
	badXML := filepath.Join(dir, "bad.xml")
	if err := os.WriteFile(badXML, []byte("<opencv_storage></opencv_storage>"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.onnx")
	e := newEngine(t)
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"unknown kind", Options{Kind: "mtcnn"}, []string{`"mtcnn"`, "haar, yunet, ultraface, none"}},
		{"no kind", Options{}, []string{`""`, "haar, yunet, ultraface, none"}},
		{"negative min size", Options{Kind: Haar, MinSize: -1}, []string{"min_size -1"}},
		{"corrupt yunet", Options{Kind: YuNet, Model: corrupt, Engine: e}, []string{"corrupt.onnx"}},
		{"corrupt ultraface", Options{Kind: UltraFace, Model: corrupt, Engine: e}, []string{"corrupt.onnx"}},
		{"missing model", Options{Kind: YuNet, Model: missing, Engine: e}, []string{"missing.onnx"}},
		{"no model", Options{Kind: UltraFace, Engine: e}, []string{"ultraface", "model"}},
		{"no engine", Options{Kind: YuNet, Model: corrupt}, []string{"engine"}},
		{"bad cascade", Options{Kind: Haar, Model: badXML}, []string{"bad.xml"}},
		{"missing cascade", Options{Kind: Haar, Model: missing}, []string{"missing.onnx"}},
		{"bad score", Options{Kind: Haar, Score: 2}, []string{"score"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(tc.opts)
			if err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestFinish(t *testing.T) {
	r := func(x, y, s int) image.Rectangle { return image.Rect(x, y, x+s, y+s) }
	tests := []struct {
		in      []Box
		minSize int
		want    []Box
	}{
		{nil, 32, nil},
		{[]Box{{Rect: r(0, 0, 50), Score: 0.5}, {Rect: r(5, 5, 50), Score: 0.9}}, 32, []Box{{Rect: r(5, 5, 50), Score: 0.9}}},
		{[]Box{{Rect: r(0, 0, 50), Score: 0.5}, {Rect: r(100, 0, 50), Score: 0.9}}, 32, []Box{{Rect: r(100, 0, 50), Score: 0.9}, {Rect: r(0, 0, 50), Score: 0.5}}},
		{[]Box{{Rect: r(0, 0, 50), Score: 0.9}, {Rect: r(100, 0, 10), Score: 0.95}}, 32, []Box{{Rect: r(0, 0, 50), Score: 0.9}}}, // below min size
		{[]Box{{Rect: r(0, 0, 50), Score: 0.9}, {Rect: r(100, 0, 10), Score: 0.95}}, 0, []Box{{Rect: r(100, 0, 10), Score: 0.95}, {Rect: r(0, 0, 50), Score: 0.9}}},
	}
	for i, tc := range tests {
		if got := finish(tc.in, tc.minSize); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d: finish = %v, want %v", i, got, tc.want)
		}
	}
}

func BenchmarkDetect720p(b *testing.B) {
	var img gocv.Mat
	if haveShared(b) {
		img = frameAt(b, testenv.SharedFile(b, "data/videos/real/ffpp_004.mp4"), 0)
	} else {
		src := frameAt(b, capturetest.Megamind, 30)
		img = gocv.NewMat()
		gocv.Resize(src, &img, image.Pt(1280, 720), 0, 0, gocv.InterpolationLinear)
		src.Close()
	}
	defer img.Close()
	for _, kind := range Kinds {
		d, ok := detectors(b)[kind]
		if !ok {
			continue
		}
		b.Run(kind, func(b *testing.B) {
			buf := make([]Box, 0, 16)
			for b.Loop() {
				var err error
				if buf, err = d.Detect(img, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// haveShared reports whether the shared test data is there (testenv.Shared would skip).
func haveShared(t testing.TB) bool {
	_, ok := testenv.SharedDir(t)
	return ok
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestInstalledCascadesLoad(t *testing.T) {
	capturetest.CheckMats(t)
	files, _ := filepath.Glob("/usr/share/opencv4/haarcascades/*.xml")
	if len(files) == 0 {
		t.Skip("opencv-data not installed")
	}
	for _, f := range files {
		d, err := New(Options{Kind: Haar, Model: f})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		d.Close()
	}
}

// TestExplicitZeros: faces.score 0 and faces.min_size 0 are values, not "use
// a default" (they once became 0.6 or 0.7, and 32): with both at 0 the ONNX
// detectors keep boxes below any default score and smaller than 32 px.
func TestExplicitZeros(t *testing.T) {
	capturetest.CheckMats(t)
	img := frameAt(t, filepath.Join(testenv.Shared(t), "data/videos/real/ffpp_004.mp4"), 0)
	defer img.Close()
	e := newEngine(t)
	for _, o := range []Options{
		{Kind: YuNet, Model: testenv.SharedFile(t, "models/face/yunet.onnx"), Engine: e},
		{Kind: UltraFace, Model: testenv.SharedFile(t, "models/face/ultraface-rfb-320.onnx"), Engine: e},
	} {
		t.Run(o.Kind, func(t *testing.T) {
			d, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			boxes, err := d.Detect(img, nil)
			if err != nil {
				t.Fatal(err)
			}
			low := slices.ContainsFunc(boxes, func(b Box) bool { return b.Score < 0.5 })
			small := slices.ContainsFunc(boxes, func(b Box) bool { return b.Rect.Dx() < 32 || b.Rect.Dy() < 32 })
			if !low || !small {
				t.Errorf("score 0, min_size 0: %d boxes, some below score 0.5: %v, some under 32 px: %v", len(boxes), low, small)
			}
		})
	}
}

// TestCascadeErrorIsShort: the bytes of a garbage cascade are not echoed
// into the error (and so into the log) beyond a short, quoted excerpt.
func TestCascadeErrorIsShort(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.xml")
	if err := os.WriteFile(p, []byte("<"+strings.Repeat("x\u200b", 5000)+"/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Kind: Haar, Model: p})
	if err == nil {
		d.Close()
		t.Fatal("New succeeded")
	}
	if msg := err.Error(); len(msg) > 300 || !strings.Contains(msg, "huge.xml") || strings.Contains(msg, "\u200b") {
		t.Fatalf("error is %d bytes, or does not name the file, or carries the raw bytes: %.400q", len(msg), msg)
	}
}
