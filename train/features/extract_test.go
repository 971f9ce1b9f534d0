package features

import (
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/train"
)

// writeImage draws a w×h image whose content depends on shade.
func writeImage(t *testing.T, path string, w, h int, shade uint8) {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(shade), float64(255-shade), 90, 0), h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	gocv.Circle(&m, image.Pt(w/2, h/2), min(w, h)/4, color.RGBA{R: shade / 2, G: 200, B: shade, A: 255}, -1)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if !gocv.IMWrite(path, m) {
		t.Fatalf("write %s", path)
	}
}

type testModels struct {
	bb  *infer.Backbone
	pre *preprocess.Preprocessor
	eng *engine.Engine
}

func loadModels(t *testing.T) testModels {
	t.Helper()
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	path, _ := testenv.Models(t)
	bb, err := infer.LoadBackbone(eng, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bb.Close() })
	m := bb.Meta()
	pre, err := preprocess.New(preprocess.Params{Size: m.InputSize, Mean: m.Mean, Std: m.Std, ColorOrder: m.ColorOrder, Margin: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pre.Close() })
	return testModels{bb: bb, pre: pre, eng: eng}
}

func TestExtract(t *testing.T) {
	capturetest.CheckMats(t)
	m := loadModels(t)
	dir := t.TempDir()
	for i := range 7 {
		writeImage(t, filepath.Join(dir, "real", "r"+string(rune('a'+i))+".png"), 90+i*7, 100, uint8(20*i))
		writeImage(t, filepath.Join(dir, "fake", "f"+string(rune('a'+i))+".jpg"), 120, 80+i*5, uint8(250-20*i))
	}
	// The same bytes twice (one backbone run), a text file and an empty file.
	b, _ := os.ReadFile(filepath.Join(dir, "real", "ra.png"))
	os.WriteFile(filepath.Join(dir, "fake", "copy.png"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "real", "notes.txt"), []byte("not an image"), 0o644)
	os.WriteFile(filepath.Join(dir, "fake", "empty.jpg"), nil, 0o644)
	folder, err := dataset.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Backbone: m.bb.ID(), InputSize: m.bb.Meta().InputSize, Crop: "none"}
	cacheDir := t.TempDir()
	// run leaves its cache open (the dataset reads from it); the caller closes it.
	run := func(batch int) (*Result, [][]float32, []Progress, *Cache) {
		t.Helper()
		c, err := OpenCache(cacheDir, key, m.bb.FeatureSize())
		if err != nil {
			t.Fatal(err)
		}
		ex := &Extractor{Backbone: m.bb, InputSize: m.bb.Meta().InputSize, Pre: m.pre, Batch: batch}
		var ps []Progress
		res, err := ex.Extract(context.Background(), folder, c, func(p Progress) { ps = append(ps, p) })
		if err != nil {
			t.Fatal(err)
		}
		var feats [][]float32
		for i := range res.Dataset.Len() {
			x := make([]float32, res.Dataset.Dim())
			if err := res.Dataset.Features(i, x); err != nil {
				t.Fatal(err)
			}
			feats = append(feats, x)
		}
		return res, feats, ps, c
	}
	first, feats, ps, c1 := run(4)
	// The copy comes after its original's batch ran, so it is found in the cache.
	if first.Cached != 1 || first.Extracted != 14 || len(first.Skipped) != 2 {
		t.Fatalf("first run: %d cached, %d extracted, skipped %v; want 1, 14, 2", first.Cached, first.Extracted, first.Skipped)
	}
	var skipped []string
	for _, s := range first.Skipped {
		skipped = append(skipped, s.Path)
	}
	slices.Sort(skipped)
	if !slices.Equal(skipped, []string{"fake/empty.jpg", "real/notes.txt"}) {
		t.Errorf("skipped %v", first.Skipped)
	}
	if last := ps[len(ps)-1]; last.Done != last.Total || last.Total != 17 {
		t.Errorf("last progress %+v, want 17 of 17", last)
	}
	if first.Dataset.Len() != 15 || first.Dataset.Dim() != m.bb.FeatureSize() {
		t.Fatalf("dataset %d×%d", first.Dataset.Len(), first.Dataset.Dim())
	}
	// The copy's features are the original's; different images differ.
	idx := map[string]int{}
	for i, s := range first.Dataset.Samples {
		idx[s.Path] = i
	}
	if !slices.Equal(feats[idx["fake/copy.png"]], feats[idx["real/ra.png"]]) {
		t.Error("identical bytes got different features")
	}
	if slices.Equal(feats[idx["real/ra.png"]], feats[idx["real/rb.png"]]) {
		t.Error("different images got identical features")
	}
	// The features are the backbone's on the daemon's preprocessing.
	img := gocv.IMRead(filepath.Join(dir, "fake", "fc.jpg"), gocv.IMReadColor)
	in := make([]float32, m.pre.Len())
	err = m.pre.Fill(img, image.Rect(0, 0, img.Cols(), img.Rows()), in)
	img.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, m.bb.FeatureSize())
	if err := m.bb.Features(in, 1, want); err != nil {
		t.Fatal(err)
	}
	if got := feats[idx["fake/fc.jpg"]]; !close32(got, want) {
		t.Error("batched features differ from a single backbone run")
	}

	c1.Close() // a second open waits for the lock
	again, feats2, _, c2 := run(16)
	defer c2.Close()
	if again.Cached != 15 || again.Extracted != 0 {
		t.Errorf("second run: %d cached, %d extracted; want 15, 0", again.Cached, again.Extracted)
	}
	for i := range feats {
		if !slices.Equal(feats[i], feats2[i]) {
			t.Fatalf("sample %d: cached features differ", i)
		}
	}
	// WriteFiles keeps samples and features together, in order.
	fp, lp := filepath.Join(t.TempDir(), "f.f32"), filepath.Join(t.TempDir(), "l.csv")
	if err := again.Dataset.WriteFiles(fp, lp); err != nil {
		t.Fatal(err)
	}
	wantLabels := "label,group\n"
	for _, s := range again.Dataset.Samples {
		wantLabels += fmt.Sprintf("%d,%s\n", s.Label, s.Group)
	}
	if lab, _ := os.ReadFile(lp); string(lab) != wantLabels || !strings.Contains(wantLabels, "1,fake/fc.jpg\n") {
		t.Errorf("labels file %q, want %q", lab, wantLabels)
	}
	packed, _ := os.ReadFile(fp)
	if len(packed) != 4*len(feats2)*m.bb.FeatureSize() {
		t.Fatalf("features file %d bytes", len(packed))
	}
	for j, v := range feats2[0] {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(packed[4*j:])); got != v {
			t.Fatalf("features file: sample 0 feature %d is %g, want %g", j, got, v)
		}
	}
}

func close32(a, b []float32) bool {
	for i := range a {
		if d := a[i] - b[i]; d > 1e-4 || d < -1e-4 {
			return false
		}
	}
	return len(a) == len(b)
}

// TestExtractFaceCrop runs the haar detector on a real face photo and on an
// image without a face, which is used whole and reported.
func TestExtractFaceCrop(t *testing.T) {
	capturetest.CheckMats(t)
	shared := testenv.Shared(t)
	m := loadModels(t)
	dir := t.TempDir()
	photo, err := os.ReadFile(filepath.Join(shared, "data", "hardfake", "train", "real", "real_1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "real"), 0o755)
	os.WriteFile(filepath.Join(dir, "real", "face.jpg"), photo, 0o644)
	writeImage(t, filepath.Join(dir, "fake", "blank.png"), 200, 200, 10)
	folder, err := dataset.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	det, err := face.New(face.Options{Kind: face.Haar, MinSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	c, err := OpenCache(t.TempDir(), Key{Backbone: m.bb.ID(), InputSize: 128, Crop: "face:haar"}, m.bb.FeatureSize())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ex := &Extractor{Backbone: m.bb, InputSize: m.bb.Meta().InputSize, Pre: m.pre, Detector: det}
	res, err := ex.Extract(context.Background(), folder, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dataset.Len() != 2 || !slices.Equal(res.NoFace, []string{"fake/blank.png"}) {
		t.Errorf("%d samples, no face in %v; want 2 and only the blank image", res.Dataset.Len(), res.NoFace)
	}
}

func TestExtractSelfBlend(t *testing.T) {
	capturetest.CheckMats(t)
	m := loadModels(t)
	dir := t.TempDir()
	for i := range 3 {
		writeImage(t, filepath.Join(dir, "real", fmt.Sprintf("r%d.png", i)), 96, 96, uint8(40*i))
	}
	writeImage(t, filepath.Join(dir, "fake", "f0.png"), 96, 96, 200)
	os.WriteFile(filepath.Join(dir, "real", "broken.png"), []byte("not an image"), 0o644)
	folder, err := dataset.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Backbone: m.bb.ID(), InputSize: m.bb.Meta().InputSize, Crop: "none"}
	cacheDir := t.TempDir()
	run := func(sb SelfBlend) (*Result, map[string][]float32) {
		t.Helper()
		c, err := OpenCache(cacheDir, key, m.bb.FeatureSize())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ex := &Extractor{Backbone: m.bb, InputSize: m.bb.Meta().InputSize, Pre: m.pre, Batch: 4, SelfBlend: sb}
		var last Progress
		res, err := ex.Extract(context.Background(), folder, c, func(p Progress) { last = p })
		if err != nil {
			t.Fatal(err)
		}
		if last.Done != last.Total {
			t.Errorf("progress ended at %d of %d", last.Done, last.Total)
		}
		feats := map[string][]float32{}
		for i, s := range res.Dataset.Samples {
			x := make([]float32, res.Dataset.Dim())
			if err := res.Dataset.Features(i, x); err != nil {
				t.Fatal(err)
			}
			feats[s.Path] = x
		}
		c.Close()
		return res, feats
	}
	first, feats := run(SelfBlend{Per: 2, Seed: 1})
	// 4 images and 2 blends of each of the 3 readable reals; the broken one
	// is skipped with its blends.
	if first.Dataset.Len() != 10 || first.Extracted != 10 || len(first.Skipped) != 1 {
		t.Fatalf("%d samples, %d extracted, skipped %v; want 10, 10 and the broken image", first.Dataset.Len(), first.Extracted, first.Skipped)
	}
	var blends []Sample
	for _, s := range first.Dataset.Samples {
		if strings.Contains(s.Path, "#self-blend-") {
			blends = append(blends, s)
		}
	}
	if len(blends) != 6 {
		t.Fatalf("blends %v, want 2 for each real image", blends)
	}
	for _, s := range blends {
		src := strings.SplitN(s.Path, "#", 2)[0]
		if s.Label != train.Fake || s.Group != src || !strings.HasPrefix(src, "real/") {
			t.Errorf("blend %+v: want a fake in its real image's group", s)
		}
		if slices.Equal(feats[s.Path], feats[src]) {
			t.Errorf("blend %s has its image's features", s.Path)
		}
	}
	if slices.Equal(feats[BlendPath("real/r0.png", 0)], feats[BlendPath("real/r0.png", 1)]) {
		t.Error("two blends of one image are the same")
	}
	// The same seed: every blend from the cache, the same features.
	again, feats2 := run(SelfBlend{Per: 2, Seed: 1})
	if again.Cached != 10 || again.Extracted != 0 {
		t.Errorf("second run: %d cached, %d extracted; want 10, 0", again.Cached, again.Extracted)
	}
	for p, x := range feats {
		if !slices.Equal(x, feats2[p]) {
			t.Errorf("%s: features changed between runs", p)
		}
	}
	// Another seed draws other blends; the images themselves come from the cache.
	other, feats3 := run(SelfBlend{Per: 2, Seed: 2})
	if other.Cached != 4 || other.Extracted != 6 {
		t.Errorf("new seed: %d cached, %d extracted; want 4, 6", other.Cached, other.Extracted)
	}
	if slices.Equal(feats3[BlendPath("real/r1.png", 0)], feats[BlendPath("real/r1.png", 0)]) {
		t.Error("another seed gave the same blend")
	}
}

// TestDecodeLandmarks: with YuNet the crop comes with the face's landmarks
// in the crop's pixels (the self-blend's mask follows them); haar gives none.
func TestDecodeLandmarks(t *testing.T) {
	capturetest.CheckMats(t)
	shared := testenv.Shared(t)
	m := loadModels(t)
	photo, err := os.ReadFile(filepath.Join(shared, "data", "hardfake", "train", "real", "real_1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		opts      face.Options
		landmarks bool
	}{
		{"yunet", face.Options{Kind: face.YuNet, Model: testenv.SharedFile(t, "models/face/yunet.onnx"), MinSize: 32, Score: 0.6, Engine: m.eng}, true},
		{"haar", face.Options{Kind: face.Haar, MinSize: 32}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			det, err := face.New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer det.Close()
			ex := &Extractor{Backbone: m.bb, InputSize: m.bb.Meta().InputSize, Pre: m.pre, Detector: det}
			img, crop, lm, _, err := ex.decode(photo, "real_1.jpg", nil, &Result{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if (lm != nil) != tc.landmarks {
				t.Fatalf("landmarks %v, want some: %v", lm, tc.landmarks)
			}
			if lm == nil {
				return
			}
			region := crop.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
			for i, p := range lm {
				if !image.Pt(int(p[0]), int(p[1])).In(image.Rect(0, 0, region.Dx(), region.Dy())) {
					t.Errorf("landmark %d %v outside the %v crop", i, p, region.Size())
				}
			}
			if eyes, mouth := (lm[0][1]+lm[1][1])/2, (lm[3][1]+lm[4][1])/2; !(eyes < lm[2][1] && lm[2][1] < mouth) {
				t.Errorf("landmarks %v: eyes, nose and mouth out of order", lm)
			}
		})
	}
}
