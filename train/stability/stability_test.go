package stability

import (
	"context"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// leftBright is a 64x64 BGR image whose left `bright` columns are white and
// the rest black.
func leftBright(t *testing.T, bright int) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), 64, 64, gocv.MatTypeCV8UC3)
	gocv.Rectangle(&m, image.Rect(0, 0, bright, 64), color.RGBA{255, 255, 255, 0}, -1)
	return m
}

// leftShare is a stand-in model: p(fake) is how bright the input's left
// half is against the whole, so a mirror turns a left-bright face around and
// a small shift moves it a little. It lets the test know every score.
type leftShare struct{ size int }

func (s leftShare) Score(input []float32, n int, p []float32) (float64, error) {
	plane := s.size * s.size
	for i := range n {
		x := input[i*3*plane : i*3*plane+plane] // first channel
		var left, all float64
		for k, v := range x {
			v := float64(v) + 3 // normalised values are about -2..2.5
			all += v
			if k%s.size < s.size/2 {
				left += v
			}
		}
		p[i] = float32(left / all)
	}
	return 0.5, nil
}

func newPre(t *testing.T) *preprocess.Preprocessor {
	t.Helper()
	pre, err := preprocess.New(preprocess.Params{Size: 32, Mean: [3]float32{0.5, 0.5, 0.5},
		Std: [3]float32{0.25, 0.25, 0.25}, ColorOrder: preprocess.RGB})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pre.Close() })
	return pre
}

func TestViews(t *testing.T) {
	capturetest.CheckMats(t)
	src := leftBright(t, 24)
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	// Brightness at row 32 of a few columns after each view.
	for _, tc := range []struct {
		view string
		// column -> want white (true) or black (false)
		want map[int]bool
	}{
		{"mirror", map[int]bool{0: false, 36: false, 42: true, 63: true}},
		// 8 px at 128 is 4 px at 64: the edge moves from 24 to 28.
		{"shift8", map[int]bool{5: true, 26: true, 30: false}},
		// 110 % about the centre (31.5): the edge at 24.5 moves to 23.8.
		{"scale110", map[int]bool{22: true, 25: false}},
		{"scale90", map[int]bool{24: true, 26: false}},
	} {
		t.Run(tc.view, func(t *testing.T) {
			vs, err := ByName([]string{tc.view})
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 2 || vs[0].Name != None || vs[1].Name != tc.view {
				t.Fatalf("ByName(%s) = %v", tc.view, vs)
			}
			if err := vs[1].Apply(src, &dst); err != nil {
				t.Fatal(err)
			}
			if dst.Cols() != 64 || dst.Rows() != 64 || dst.Type() != gocv.MatTypeCV8UC3 {
				t.Fatalf("view size %dx%d type %v", dst.Cols(), dst.Rows(), dst.Type())
			}
			for x, white := range tc.want {
				v := dst.GetVecbAt(32, x)[0]
				if white != (v > 200) || !white && v > 60 {
					t.Errorf("column %d: %d, want white=%v", x, v, white)
				}
			}
		})
	}
	t.Run("jpeg50", func(t *testing.T) {
		vs, _ := ByName([]string{"jpeg50"})
		if err := vs[1].Apply(src, &dst); err != nil {
			t.Fatal(err)
		}
		diff := gocv.NewMat()
		defer diff.Close()
		gocv.AbsDiff(src, dst, &diff)
		mean := diff.Mean()
		if mean.Val1 == 0 || mean.Val1 > 20 {
			t.Errorf("jpeg50 changed the image by %.2f on average: want a small, non-zero change", mean.Val1)
		}
	})
	if _, err := ByName([]string{"mirror", "upside-down"}); err == nil || !strings.Contains(err.Error(), "upside-down") {
		t.Errorf("an unknown view: %v, want an error naming it", err)
	}
}

// writeFolder writes real/ and fake/ images: fakes bright on the left (the
// stand-in model scores them high), reals bright on the right.
func writeFolder(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for _, class := range []string{dataset.Real, dataset.Fake} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			bright := 36 + 2*i // 36..: more than half the width is white
			m := leftBright(t, bright)
			if class == dataset.Real {
				gocv.Flip(m, &m, 1)
			}
			if !gocv.IMWrite(filepath.Join(dir, class, string(rune('a'+i))+".png"), m) {
				t.Fatal("imwrite failed")
			}
			m.Close()
		}
	}
	return dir
}

func TestRun(t *testing.T) {
	capturetest.CheckMats(t)
	dir := writeFolder(t, 4)
	if err := os.WriteFile(filepath.Join(dir, "fake", "broken.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := dataset.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := ByName([]string{"mirror", "shift2.3", "jpeg50"})
	if err != nil {
		t.Fatal(err)
	}
	var calls []Progress
	res, err := Run(context.Background(), f, leftShare{32}, newPre(t), Options{Views: vs, Confident: 0.05, Batch: 3},
		func(p Progress) { calls = append(calls, p) })
	if err != nil {
		t.Fatal(err)
	}
	if res.N != 8 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Path, "broken") {
		t.Fatalf("n %d skipped %v: want 8 scored and the broken file skipped", res.N, res.Skipped)
	}
	if last := calls[len(calls)-1]; last.Done != 9 || last.Total != 9 {
		t.Errorf("last progress %+v, want 9 of 9", last)
	}
	if res.Threshold != 0.5 || len(res.Views) != 4 {
		t.Fatalf("threshold %v, %d views", res.Threshold, len(res.Views))
	}
	byName := map[string]ViewResult{}
	for _, v := range res.Views {
		byName[v.Name] = v
	}
	if auc := byName[None].Metrics.AUC; auc != 1 {
		t.Errorf("as it is: AUC %v, want 1 (the stand-in separates the classes)", auc)
	}
	// A mirror turns every verdict around; 2.3 px and JPEG move none.
	for _, tc := range []struct {
		view    string
		changed float64
	}{{"mirror", 1}, {"shift2.3", 0}, {"jpeg50", 0}} {
		v := byName[tc.view]
		if v.Changed != tc.changed {
			t.Errorf("%s changed %.2f of verdicts, want %.2f", tc.view, v.Changed, tc.changed)
		}
		if v.ChangedConfident == nil || *v.ChangedConfident != tc.changed {
			t.Errorf("%s changed %v of the confident verdicts, want %.2f", tc.view, v.ChangedConfident, tc.changed)
		}
	}
	if m := byName["mirror"]; m.Metrics.AUC != 0 || m.MedianDelta < 0.1 {
		t.Errorf("mirror: AUC %v median |dp| %v, want 0 and a large move", m.Metrics.AUC, m.MedianDelta)
	}
	if s := byName["shift2.3"]; s.MedianDelta <= 0 || s.MedianDelta > 0.05 {
		t.Errorf("shift2.3: median |dp| %v, want small but non-zero", s.MedianDelta)
	}
	for v, scores := range res.Scores {
		if len(scores) != res.N {
			t.Errorf("view %d: %d scores for %d faces", v, len(scores), res.N)
		}
	}
}

func TestRunRefuses(t *testing.T) {
	dir := writeFolder(t, 1)
	f, err := dataset.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	mirrorOnly := Views()[1:2]
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no reference view", Options{Views: mirrorOnly, Batch: 1}, `"none"`},
		{"zero batch", Options{Views: Views(), Batch: 0}, "batch 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), f, leftShare{32}, newPre(t), tc.o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		name            string
		ref, other      []float64
		changed, median float64
		conf            float64 // -1: none confident
	}{
		{"same", []float64{0.1, 0.9}, []float64{0.1, 0.9}, 0, 0, 0},
		{"one of four flips", []float64{0.1, 0.45, 0.55, 0.9}, []float64{0.1, 0.55, 0.55, 0.9}, 0.25, 0, 0},
		{"a confident flip", []float64{0.1, 0.9}, []float64{0.1, 0.2}, 0.5, 0.35, 0.5},
		{"none confident", []float64{0.45, 0.55}, []float64{0.55, 0.45}, 1, 0.1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed, conf, median, _ := compare(tc.ref, tc.other, 0.5, 0.3)
			if math.Abs(changed-tc.changed) > 1e-9 || math.Abs(median-tc.median) > 1e-9 {
				t.Errorf("changed %v median %v, want %v %v", changed, median, tc.changed, tc.median)
			}
			if tc.conf < 0 != (conf == nil) || conf != nil && math.Abs(*conf-tc.conf) > 1e-9 {
				t.Errorf("confident changed %v, want %v", conf, tc.conf)
			}
		})
	}
	if q := quantile([]float64{0, 1, 2, 3}, 0.5); q != 1.5 {
		t.Errorf("median of 0..3 = %v", q)
	}
}

// TestEvaluate runs a folder through the configured models, as eval --views
// does, and names them; a missing folder or model is an error naming it.
func TestEvaluate(t *testing.T) {
	backbone, head := testenv.Models(t)
	cfg := &config.Config{Model: config.Model{Backbone: backbone, Head: head, Runtime: testenv.ORTLibrary(t), TTA: config.TTANone}}
	dir := writeFolder(t, 4)
	views, err := ByName([]string{"mirror"})
	if err != nil {
		t.Fatal(err)
	}
	var last Progress
	r, m, err := Evaluate(context.Background(), cfg, dir, views, 0.3, nil, func(p Progress) { last = p })
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 8 || len(r.Views) != 2 || r.Views[1].Name != "mirror" || m.Backbone == "" || m.Head == "" || m.TTA != config.TTANone ||
		last.Done != last.Total || last.Total == 0 {
		t.Errorf("result n %d views %d, models %+v, last progress %+v", r.N, len(r.Views), m, last)
	}
	var out strings.Builder
	if err := r.WriteTable(&out, m, dir, 0.3); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backbone " + m.Backbone, "(8 images)", "mirror", "at least 0.3 from the threshold"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if _, _, err := Evaluate(context.Background(), cfg, filepath.Join(dir, "gone"), views, 0.3, nil, nil); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("missing folder: %v", err)
	}
	bad := *cfg
	bad.Model.Head = filepath.Join(dir, "nohead.onnx")
	if _, _, err := Evaluate(context.Background(), &bad, dir, views, 0.3, nil, nil); err == nil || !strings.Contains(err.Error(), "nohead.onnx") {
		t.Errorf("missing head: %v", err)
	}
}
