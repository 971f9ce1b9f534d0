package preprocess

import (
	"image"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// imagenet are the parameters of the reference backbone: ImageNet
// normalisation, RGB, 224 px, margin 0.2.
var imagenet = Params{Size: 224, Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}, ColorOrder: RGB, Margin: 0.2}

// with is imagenet changed by f.
func with(f func(p *Params)) Params {
	p := imagenet
	f(&p)
	return p
}

func newPP(t testing.TB, p Params) *Preprocessor {
	t.Helper()
	pp, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pp.Close() })
	return pp
}

func TestCrop(t *testing.T) {
	pp := newPP(t, with(func(p *Params) { p.Margin = 0.25 }))
	frame := image.Pt(640, 480)
	tests := []struct {
		name string
		box  image.Rectangle
		want image.Rectangle
	}{
		{"centred", image.Rect(300, 200, 340, 240), image.Rect(300-10, 200-10, 340+10, 240+10)},
		{"tall box: square on the longer side", image.Rect(300, 200, 320, 240), image.Rect(280, 190, 340, 250)},
		{"left edge: shifted right", image.Rect(0, 200, 40, 240), image.Rect(0, 190, 60, 250)},
		{"bottom right corner: shifted in", image.Rect(620, 460, 640, 480), image.Rect(610, 450, 640, 480)},
		{"partly outside the frame", image.Rect(-20, -20, 20, 20), image.Rect(0, 0, 60, 60)},
		{"bigger than the frame: shorter side", image.Rect(100, 0, 500, 480), image.Rect(60, 0, 540, 480)},
		{"tiny box", image.Rect(10, 10, 11, 11), image.Rect(9, 9, 11, 11)},
		{"empty box", image.Rect(10, 10, 10, 30), image.Rectangle{}},
		{"reversed corners", image.Rect(340, 240, 300, 200), image.Rect(290, 190, 350, 250)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := pp.Crop(tc.box, frame)
			if got != tc.want {
				t.Fatalf("Crop(%v) = %v, want %v", tc.box, got, tc.want)
			}
			if !got.Empty() && (got.Dx() != got.Dy() || !got.In(image.Rect(0, 0, frame.X, frame.Y))) {
				t.Fatalf("Crop(%v) = %v: not a square inside the frame", tc.box, got)
			}
		})
	}
	if got := pp.Crop(image.Rect(0, 0, 10, 10), image.Point{}); !got.Empty() {
		t.Errorf("crop in an empty frame: %v", got)
	}
}

// realImage is a real face: a DFDC crop from ../shared, else a Megamind frame.
func realImage(t testing.TB) gocv.Mat {
	t.Helper()
	var p string
	shared, _ := testenv.SharedDir(t)
	if m, _ := filepath.Glob(filepath.Join(shared, "data", "hardfake", "test", "real", "*.jpg")); len(m) > 0 {
		p = m[0]
	} else {
		p = filepath.Join(t.TempDir(), "frame.png")
		clip := filepath.Join(t.TempDir(), "clip.avi")
		if err := capturetest.Write(clip, 1, 25); err != nil {
			t.Fatal(err)
		}
		vc, err := gocv.VideoCaptureFile(clip)
		if err != nil {
			t.Fatal(err)
		}
		m := gocv.NewMat()
		vc.Read(&m)
		gocv.IMWrite(p, m)
		m.Close()
		vc.Close()
	}
	img := gocv.IMRead(p, gocv.IMReadColor)
	if img.Empty() {
		t.Fatalf("read %s", p)
	}
	return img
}

// reference normalises an image.Image crop in plain Go, float64 maths.
func reference(src image.Image, crop image.Rectangle, p Params) []float32 {
	s := crop.Dx()
	out := make([]float32, 3*s*s)
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			r, g, b, _ := src.At(crop.Min.X+x, crop.Min.Y+y).RGBA()
			channels := []uint32{r >> 8, g >> 8, b >> 8}
			if p.ColorOrder == BGR {
				channels = []uint32{b >> 8, g >> 8, r >> 8}
			}
			for c, v := range channels {
				out[c*s*s+y*s+x] = float32((float64(v)/255 - float64(p.Mean[c])) / float64(p.Std[c]))
			}
		}
	}
	return out
}

func TestFillMatchesReference(t *testing.T) {
	capturetest.CheckMats(t)
	img := realImage(t)
	defer img.Close()
	full, err := img.ToImage()
	if err != nil {
		t.Fatal(err)
	}
	w, h := img.Cols(), img.Rows()
	tests := []struct {
		name string
		p    Params
		crop image.Rectangle
	}{
		{"imagenet, no resize", with(func(p *Params) { p.Size = 64 }), image.Rect(w/4, h/4, w/4+64, h/4+64)},
		{"custom mean/std at the corner", with(func(p *Params) { p.Size, p.Mean, p.Std = 32, [3]float32{0.5, 0.4, 0.3}, [3]float32{0.2, 0.3, 0.4} }), image.Rect(w-32, h-32, w, h)},
		{"shrunk", with(func(p *Params) { p.Size = 48 }), image.Rect(10, 10, 10+min(w, h)-20, 10+min(w, h)-20)},
		{"enlarged tiny crop", with(func(p *Params) { p.Size = 40 }), image.Rect(w/2, h/2, w/2+5, h/2+5)},
		{"BGR, no resize", with(func(p *Params) { p.Size, p.ColorOrder = 64, BGR }), image.Rect(w/4, h/4, w/4+64, h/4+64)},
		{"BGR, custom mean/std, shrunk", with(func(p *Params) {
			p.Size, p.ColorOrder, p.Mean, p.Std = 48, BGR, [3]float32{0.5, 0.4, 0.3}, [3]float32{0.2, 0.3, 0.4}
		}), image.Rect(10, 10, 10+min(w, h)-20, 10+min(w, h)-20)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pp := newPP(t, tc.p)
			dst := make([]float32, pp.Len()+5)
			for i := range dst {
				dst[i] = -99
			}
			if err := pp.Fill(img, tc.crop, dst); err != nil {
				t.Fatal(err)
			}
			// The reference resizes with the same OpenCV call only when it must,
			// then does crop, channel order, layout and normalisation in Go.
			src, crop := full, tc.crop
			if tc.crop.Dx() != pp.Params().Size {
				roi := img.Region(tc.crop)
				small := gocv.NewMat()
				gocv.Resize(roi, &small, image.Pt(pp.Params().Size, pp.Params().Size), 0, 0, gocv.InterpolationArea)
				if src, err = small.ToImage(); err != nil {
					t.Fatal(err)
				}
				roi.Close()
				small.Close()
				crop = image.Rect(0, 0, pp.Params().Size, pp.Params().Size)
			}
			want := reference(src, crop, pp.Params())
			for i, v := range want {
				if math.Abs(float64(dst[i]-v)) > 1e-5 {
					t.Fatalf("dst[%d] = %v, want %v", i, dst[i], v)
				}
			}
			for _, v := range dst[pp.Len():] {
				if v != -99 {
					t.Fatal("Fill wrote past one sample")
				}
			}
		})
	}
}

func TestFillErrors(t *testing.T) {
	capturetest.CheckMats(t)
	pp := newPP(t, with(func(p *Params) { p.Size = 16 }))
	img := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC3)
	defer img.Close()
	grey := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC1)
	defer grey.Close()
	buf := make([]float32, pp.Len())
	tests := []struct {
		name string
		img  gocv.Mat
		crop image.Rectangle
		dst  []float32
		want string
	}{
		{"short buffer", img, image.Rect(0, 0, 10, 10), buf[:pp.Len()-1], "needs 768"},
		{"outside", img, image.Rect(95, 95, 110, 110), buf, "outside the 100x100 image"},
		{"empty crop", img, image.Rectangle{}, buf, "empty"},
		{"grey image", grey, image.Rect(0, 0, 10, 10), buf, "3-channel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := pp.Fill(tc.img, tc.crop, tc.dst); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fill: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// TestNewParams: parameters are used as given, zeros included; what a
// model cannot take is refused, not replaced.
func TestNewParams(t *testing.T) {
	zeroMargin := with(func(p *Params) { p.Margin = 0 })
	if got := newPP(t, zeroMargin).Params(); got != zeroMargin {
		t.Errorf("Params() = %+v, want %+v", got, zeroMargin)
	}
	for _, p := range []Params{
		{},
		with(func(p *Params) { p.Size = 0 }),
		with(func(p *Params) { p.Size = -1 }),
		with(func(p *Params) { p.Margin = -0.1 }),
		with(func(p *Params) { p.Mean, p.Std = [3]float32{}, [3]float32{} }),
		with(func(p *Params) { p.Std = [3]float32{1, 0, 1} }),
		with(func(p *Params) { p.Mean = [3]float32{float32(math.NaN()), 0, 0} }),
		with(func(p *Params) { p.ColorOrder = "" }),
		with(func(p *Params) { p.ColorOrder = "rgb" }),
	} {
		if pp, err := New(p); err == nil {
			pp.Close()
			t.Errorf("New(%+v) accepted bad params", p)
		}
	}
}

// TestMarginZero: faces.margin 0 crops the box itself (it once became 0.2).
func TestMarginZero(t *testing.T) {
	pp := newPP(t, with(func(p *Params) { p.Margin = 0 }))
	if got, want := pp.Crop(image.Rect(300, 200, 340, 240), image.Pt(640, 480)), image.Rect(300, 200, 340, 240); got != want {
		t.Errorf("Crop with margin 0 = %v, want the box %v", got, want)
	}
}

// TestColorOrder: one pixel B=10 G=20 R=30 lands in the planes in the model's
// order: R, G, B for an RGB model, B, G, R for a BGR one.
func TestColorOrder(t *testing.T) {
	capturetest.CheckMats(t)
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(10, 20, 30, 0), 4, 4, gocv.MatTypeCV8UC3)
	defer img.Close()
	for _, tc := range []struct {
		order string
		want  [3]float32
	}{
		{RGB, [3]float32{30, 20, 10}},
		{BGR, [3]float32{10, 20, 30}},
	} {
		t.Run(tc.order, func(t *testing.T) {
			pp := newPP(t, Params{Size: 1, Std: [3]float32{1, 1, 1}, ColorOrder: tc.order})
			dst := make([]float32, pp.Len())
			if err := pp.Fill(img, image.Rect(0, 0, 4, 4), dst); err != nil {
				t.Fatal(err)
			}
			for c := range 3 {
				if math.Abs(float64(dst[c]*255-tc.want[c])) > 1e-3 {
					t.Fatalf("planes %v*255, want %v", dst, tc.want)
				}
			}
		})
	}
}

func TestFillNoAllocs(t *testing.T) {
	if _, profiling := capturetest.MatCount(); profiling {
		t.Skip("the Mat profile itself allocates")
	}
	img := realImage(t)
	defer img.Close()
	pp := newPP(t, imagenet)
	dst := make([]float32, pp.Len())
	crop := pp.Crop(image.Rect(20, 20, 120, 140), image.Pt(img.Cols(), img.Rows()))
	if n := testing.AllocsPerRun(50, func() {
		if err := pp.Fill(img, crop, dst); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Fill allocates %v times per call", n)
	}
}

func BenchmarkFill720p(b *testing.B) {
	img := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer img.Close()
	gocv.RandU(&img, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
	pp := newPP(b, imagenet)
	dst := make([]float32, pp.Len())
	crop := pp.Crop(image.Rect(500, 200, 750, 500), image.Pt(1280, 720))
	b.ReportAllocs()
	for b.Loop() {
		if err := pp.Fill(img, crop, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecode turns a model input back into the resized crop it was made of,
// for either channel order.
func TestDecode(t *testing.T) {
	capturetest.CheckMats(t)
	frame := realImage(t)
	defer frame.Close()
	crop := image.Rect(40, 20, 200, 180)
	want := gocv.NewMat()
	defer want.Close()
	roi := frame.Region(crop)
	gocv.Resize(roi, &want, image.Pt(64, 64), 0, 0, gocv.InterpolationArea)
	roi.Close()
	var in []float32
	// A BGR model's input (planes B, G, R with its mean and std in that
	// order) decodes to the same picture as an RGB model's.
	for _, order := range []string{BGR, RGB} {
		mean, std := imagenet.Mean, imagenet.Std
		if order == BGR {
			mean, std = [3]float32{mean[2], mean[1], mean[0]}, [3]float32{std[2], std[1], std[0]}
		}
		pp, err := New(Params{Size: 64, Mean: mean, Std: std, ColorOrder: order})
		if err != nil {
			t.Fatal(err)
		}
		in = make([]float32, pp.Len())
		err = pp.Fill(frame, crop, in)
		pp.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := gocv.NewMat()
		for range 2 { // the second call reuses got
			if err := Decode(in, mean, std, order, &got); err != nil {
				t.Fatal(err)
			}
		}
		diff := gocv.NewMat()
		gocv.AbsDiff(got, want, &diff)
		flat := diff.Reshape(1, 0)
		if _, maxv, _, _ := gocv.MinMaxLoc(flat); maxv > 1 {
			t.Errorf("%s: decoded input differs from the resized crop by up to %v", order, maxv)
		}
		flat.Close()
		diff.Close()
		if err := Decode(in[:100], mean, std, order, &got); err == nil || !strings.Contains(err.Error(), "100 floats") {
			t.Errorf("odd input length: %v", err)
		}
		got.Close()
	}
}
