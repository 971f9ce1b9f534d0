package selfblend

import (
	"math/rand/v2"
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
)

// face is a synthetic 128 px BGR crop: smooth shading with texture, so that
// colour, blur and geometry changes all show.
func face(t *testing.T) gocv.Mat {
	t.Helper()
	const n = 128
	b := make([]byte, n*n*3)
	r := rand.New(rand.NewPCG(1, 2))
	for y := range n {
		for x := range n {
			for c := range 3 {
				v := 60 + x + y/2 + 30*c + r.IntN(24)
				if (x/8+y/8)%2 == 0 {
					v += 20
				}
				b[(y*n+x)*3+c] = byte(min(v, 255))
			}
		}
	}
	m, err := gocv.NewMatFromBytes(n, n, gocv.MatTypeCV8UC3, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func blend(t *testing.T, crop gocv.Mat, lm *Landmarks, seed uint64) []byte {
	t.Helper()
	out := gocv.NewMat()
	defer out.Close()
	if err := Blend(crop, lm, rand.New(rand.NewPCG(seed, 7)), &out); err != nil {
		t.Fatal(err)
	}
	if out.Rows() != crop.Rows() || out.Cols() != crop.Cols() || out.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("blend is %dx%d type %v, want the crop's %dx%d 8UC3", out.Cols(), out.Rows(), out.Type(), crop.Cols(), crop.Rows())
	}
	return out.ToBytes()
}

// meanDiff is the mean absolute difference of a and b over the pixels in
// [x0,x1) x [y0,y1) of a 128 px image.
func meanDiff(a, b []byte, x0, y0, x1, y1 int) float64 {
	var s, n float64
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			for c := range 3 {
				i := (y*128+x)*3 + c
				d := float64(a[i]) - float64(b[i])
				if d < 0 {
					d = -d
				}
				s += d
				n++
			}
		}
	}
	return s / n
}

func TestBlendIsSeededAndStaysOnTheFace(t *testing.T) {
	capturetest.CheckMats(t)
	crop := face(t)
	defer crop.Close()
	orig := crop.ToBytes()
	a, b := blend(t, crop, nil, 1), blend(t, crop, nil, 1)
	if string(a) != string(b) {
		t.Error("the same seed gave two different blends")
	}
	if string(a) == string(blend(t, crop, nil, 2)) {
		t.Error("two seeds gave the same blend")
	}
	// Over many draws: the corners (outside any ellipse a detector's box
	// gives) keep the real pixels, the face centre does not.
	var centre float64
	const draws = 40
	for seed := range uint64(draws) {
		got := blend(t, crop, nil, seed)
		for _, c := range [][4]int{{0, 0, 10, 10}, {118, 0, 128, 10}, {0, 118, 10, 128}, {118, 118, 128, 128}} {
			if d := meanDiff(got, orig, c[0], c[1], c[2], c[3]); d > 0.5 {
				t.Errorf("seed %d: corner %v changed by %.2f levels on average", seed, c, d)
			}
		}
		centre += meanDiff(got, orig, 48, 56, 80, 88) / draws
	}
	if centre < 3 {
		t.Errorf("the face centre changed by %.2f levels on average over %d blends; want a visible blend", centre, draws)
	}
	if string(crop.ToBytes()) != string(orig) {
		t.Error("Blend changed its input")
	}
}

func TestBlendFollowsTheLandmarks(t *testing.T) {
	capturetest.CheckMats(t)
	crop := face(t)
	defer crop.Close()
	orig := crop.ToBytes()
	// A small face in the top-left quarter: eyes, nose, mouth corners.
	lm := &Landmarks{{16, 20}, {40, 20}, {28, 32}, {20, 44}, {36, 44}}
	var near float64
	for seed := range uint64(20) {
		got := blend(t, crop, lm, seed)
		if d := meanDiff(got, orig, 80, 80, 128, 128); d > 0.5 {
			t.Errorf("seed %d: the bottom-right, far from the landmarks, changed by %.2f levels", seed, d)
		}
		near += meanDiff(got, orig, 20, 22, 36, 42) / 20
	}
	if near < 3 {
		t.Errorf("inside the landmarks' hull the blend changed %.2f levels on average; want a visible blend", near)
	}
}

func TestBlendRefusesWhatIsNotABGRCrop(t *testing.T) {
	capturetest.CheckMats(t)
	grey := gocv.NewMatWithSize(64, 64, gocv.MatTypeCV8U)
	defer grey.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	for name, m := range map[string]gocv.Mat{"grey": grey, "empty": empty} {
		out := gocv.NewMat()
		if err := Blend(m, nil, rand.New(rand.NewPCG(1, 1)), &out); err == nil {
			t.Errorf("%s: no error", name)
		}
		out.Close()
	}
}
