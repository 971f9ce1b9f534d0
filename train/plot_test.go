package train

import (
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// inked counts pixels of roughly colour c.
func inked(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bb, _ := img.At(x, y).RGBA()
			if abs(int(r>>8)-int(c.R)) < 8 && abs(int(g>>8)-int(c.G)) < 8 && abs(int(bb>>8)-int(c.B)) < 8 {
				n++
			}
		}
	}
	return n
}

func abs(v int) int { return max(v, -v) }

func TestPlots(t *testing.T) {
	dir := os.Getenv("DEEPFAKED_PLOT_DIR") // set it to keep the pictures for a look
	if dir == "" {
		dir = t.TempDir()
	}
	rng := rand.New(rand.NewPCG(3, 3))
	var labels []int
	var scores []float64
	for i := range 300 {
		y := i % 3 / 2
		labels = append(labels, y)
		scores = append(scores, min(1, max(0, 0.35+0.3*float64(y)+0.2*rng.NormFloat64())))
	}
	m, err := Evaluate(labels, scores, ChooseThreshold(labels, scores))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "confusion.png")
	roc := filepath.Join(dir, "roc.png")
	if err := WriteConfusionPNG(conf, m); err != nil {
		t.Fatal(err)
	}
	if err := WriteROCPNG(roc, labels, scores); err != nil {
		t.Fatal(err)
	}
	// The ROC curve is drawn in blue; a curve of a good classifier has much
	// more of it than a single-class (undefined) one, which has none.
	good := inked(decodePNG(t, roc), blue)
	if good < 1000 {
		t.Errorf("ROC picture has %d curve pixels, want a drawn curve", good)
	}
	one := filepath.Join(dir, "roc-one-class.png")
	if err := WriteROCPNG(one, make([]int, 10), scores[:10]); err != nil {
		t.Fatal(err)
	}
	if n := inked(decodePNG(t, one), blue); n != 0 {
		t.Errorf("single-class ROC drew %d curve pixels, want none", n)
	}
	// Cells are shaded by share: the diagonal of a decent classifier is darker.
	img := decodePNG(t, conf)
	if img.Bounds().Dx() < 400 {
		t.Errorf("confusion picture is %d px wide, too small to read", img.Bounds().Dx())
	}
	if err := WriteROCPNG(roc, labels, scores[:3]); err == nil {
		t.Error("ROC with mismatched lengths succeeded")
	}
}
