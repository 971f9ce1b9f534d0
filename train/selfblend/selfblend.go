// Package selfblend makes fakes out of real faces: a self-blended image
// (Shiohara and Yamasaki, "Detecting Deepfakes with Self-Blended Images",
// CVPR 2022) is a real face crop blended, through a deformed and feathered
// face-shaped mask, with a copy of itself whose colour, sharpness and
// geometry were perturbed a little. What is left is what every face swap
// leaves (a blending boundary, a colour and sharpness mismatch inside it)
// without any one generator's fingerprints, so a head can learn "fake" for
// a camera nobody has deepfakes of.
//
// It is the Go twin of tools/faceaug.py's self_blend, which the backbone was
// trained with; the draws and their ranges are the same.
package selfblend

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"

	"gocv.io/x/gocv"
)

// Version names the blending recipe: caches of blends' features key on it,
// so a change to what Blend draws or does must change it.
const Version = "2" // 2: the detector's landmarks place the mask (--crop face with yunet)

// Landmarks are a face's five points in crop pixels, in the face detector's
// (YuNet's) order: the two eyes, the nose tip, the two mouth corners.
type Landmarks [5][2]float32

// strengths is the SBI paper's draw for how much of the perturbed face is
// blended in (full more often than not).
var strengths = [...]float64{0.25, 0.5, 0.75, 1, 1, 1}

// Blend writes into dst a self-blended fake of crop (8-bit BGR). The mask
// is an ellipse over the inner face: where the landmarks lm put it when the
// detector gave them, else where a detector's box puts the face. rng draws everything, so a seeded rng gives the same fake.
func Blend(crop gocv.Mat, lm *Landmarks, rng *rand.Rand, dst *gocv.Mat) error {
	if crop.Empty() || crop.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("self-blend: want a non-empty 8-bit BGR crop, got %v %dx%d", crop.Type(), crop.Cols(), crop.Rows())
	}
	src := perturb(crop, rng)
	defer src.Close()
	mask := faceMask(crop.Cols(), crop.Rows(), lm, rng)
	defer mask.Close()
	k := float32(strengths[rng.IntN(len(strengths))])

	img := crop
	if !crop.IsContinuous() {
		img = crop.Clone()
		defer img.Close()
	}
	a, err := img.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("self-blend: %w", err)
	}
	b, err := src.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("self-blend: %w", err)
	}
	m, err := mask.DataPtrFloat32()
	if err != nil {
		return fmt.Errorf("self-blend: %w", err)
	}
	out := make([]byte, len(a))
	for i := range out {
		w := k * m[i/3]
		out[i] = clamp8(float32(b[i])*w + float32(a[i])*(1-w))
	}
	res, err := gocv.NewMatFromBytes(crop.Rows(), crop.Cols(), gocv.MatTypeCV8UC3, out)
	if err != nil {
		return fmt.Errorf("self-blend: %w", err)
	}
	defer res.Close()
	res.CopyTo(dst)
	return nil
}

// perturb is the "other face": the crop with another colour (per-channel gain
// and offset, or a brightness, contrast, saturation and hue jitter), another
// sharpness (blurred, sharpened or neither) and moved by up to 3 %, scaled by
// up to 5 % and turned by up to 2° (as a swap's face never sits exactly).
func perturb(crop gocv.Mat, rng *rand.Rand) gocv.Mat {
	size := float64(min(crop.Cols(), crop.Rows()))
	f := gocv.NewMat()
	defer f.Close()
	crop.ConvertTo(&f, gocv.MatTypeCV32FC3)
	px, _ := f.DataPtrFloat32() // a fresh Mat is continuous
	if rng.Float64() < 0.5 {
		var gain, off [3]float32
		for c := range 3 {
			gain[c] = float32(uniform(rng, 0.9, 1.1))
		}
		for c := range 3 {
			off[c] = float32(uniform(rng, -12, 12))
		}
		for i := range px {
			px[i] = px[i]*gain[i%3] + off[i%3]
		}
	} else {
		jitter(px, rng)
		hue(&f, uniform(rng, -0.02, 0.02))
	}
	switch r := rng.Float64(); {
	case r < 0.35:
		gocv.GaussianBlur(f, &f, image.Point{}, uniform(rng, 0.5, 1.5)*size/128, 0, gocv.BorderReflect101)
	case r < 0.7: // unsharp mask
		bl := gocv.NewMat()
		gocv.GaussianBlur(f, &bl, image.Point{}, size/128, 0, gocv.BorderReflect101)
		amount := float32(uniform(rng, 0.3, 1.2))
		q, _ := bl.DataPtrFloat32()
		px, _ := f.DataPtrFloat32()
		for i := range px {
			px[i] += (px[i] - q[i]) * amount
		}
		bl.Close()
	}
	u8 := gocv.NewMat()
	defer u8.Close()
	f.ConvertTo(&u8, gocv.MatTypeCV8UC3) // saturates to 0..255
	out := gocv.NewMat()
	warp(u8, &out, uniform(rng, -0.03, 0.03)*size, uniform(rng, -0.03, 0.03)*size,
		uniform(rng, 0.95, 1.05), uniform(rng, -2, 2), gocv.BorderReflect101)
	return out
}

// jitter scales brightness, contrast and saturation each by U(0.85, 1.15), as
// PIL's ImageEnhance (the Python twin's): contrast about the mean grey,
// saturation about each pixel's grey. px is BGR floats.
func jitter(px []float32, rng *rand.Rand) {
	bright := float32(uniform(rng, 0.85, 1.15))
	for i := range px {
		px[i] *= bright
	}
	grey := func(i int) float32 { return 0.114*px[i] + 0.587*px[i+1] + 0.299*px[i+2] }
	contrast := float32(uniform(rng, 0.85, 1.15))
	var mean float64
	for i := 0; i < len(px); i += 3 {
		mean += float64(grey(i))
	}
	mu := float32(mean / float64(len(px)/3))
	for i := range px {
		px[i] = mu + contrast*(px[i]-mu)
	}
	sat := float32(uniform(rng, 0.85, 1.15))
	for i := 0; i < len(px); i += 3 {
		g := grey(i)
		for c := range 3 {
			px[i+c] = g + sat*(px[i+c]-g)
		}
	}
}

// hue turns the hue of a BGR float image by turn of the circle.
func hue(f *gocv.Mat, turn float64) {
	shift := int(math.Round(turn * 180)) // OpenCV's 8-bit hue is 0..179
	if shift == 0 {
		return
	}
	u8 := gocv.NewMat()
	defer u8.Close()
	f.ConvertTo(&u8, gocv.MatTypeCV8UC3)
	gocv.CvtColor(u8, &u8, gocv.ColorBGRToHSV)
	px, _ := u8.DataPtrUint8()
	for i := 0; i < len(px); i += 3 {
		px[i] = byte((int(px[i]) + shift + 180) % 180)
	}
	gocv.CvtColor(u8, &u8, gocv.ColorHSVToBGR)
	u8.ConvertTo(f, gocv.MatTypeCV32FC3)
}

// faceMask is a w x h float mask in 0..1 over the inner face, deformed at low
// frequency (a 4x4 grid of offsets up to 4 % of the side) and feathered by a
// Gaussian of 1-8 % of the side, half the time after an erosion.
func faceMask(w, h int, lm *Landmarks, rng *rand.Rand) gocv.Mat {
	size := float64(min(w, h))
	m8 := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8U)
	defer m8.Close()
	m8.SetTo(gocv.NewScalar(0, 0, 0, 0))
	white := color.RGBA{R: 255, G: 255, B: 255, A: 255}
	// An ellipse over the inner face, as the backbone's training draws it on
	// crops; the landmarks, when given, place, size and turn it.
	c := image.Pt(int(math.Round(float64(w)*(0.5+uniform(rng, -0.04, 0.04)))),
		int(math.Round(float64(h)*(0.58+uniform(rng, -0.04, 0.04)))))
	axes := image.Pt(int(math.Round(float64(w)*uniform(rng, 0.30, 0.40))),
		int(math.Round(float64(h)*uniform(rng, 0.34, 0.42))))
	angle := uniform(rng, -10, 10)
	if lm != nil {
		c, axes, angle = landmarkEllipse(*lm, size, rng)
	}
	gocv.Ellipse(&m8, c, axes, angle, 0, 360, white, -1)
	m := gocv.NewMat()
	m8.ConvertToWithParams(&m, gocv.MatTypeCV32F, 1.0/255, 0)

	// Low-frequency deformation: remap by a smooth field of offsets.
	var grid [2][16]float32
	for a := range grid {
		for i := range grid[a] {
			grid[a][i] = float32(uniform(rng, -1, 1))
		}
	}
	amp := float32(size * 0.04)
	mapX, mapY := gocv.NewMat(), gocv.NewMat()
	defer mapX.Close()
	defer mapY.Close()
	for a, dst := range []*gocv.Mat{&mapX, &mapY} {
		g, _ := gocv.NewMatFromBytes(4, 4, gocv.MatTypeCV32F, floatBytes(grid[a][:]))
		gocv.Resize(g, dst, image.Pt(w, h), 0, 0, gocv.InterpolationCubic)
		g.Close()
		d, _ := dst.DataPtrFloat32()
		for y := range h {
			for x := range w {
				base := float32(x)
				if a == 1 {
					base = float32(y)
				}
				d[y*w+x] = base + d[y*w+x]*amp
			}
		}
	}
	deformed := gocv.NewMat() // remap cannot work in place
	gocv.Remap(m, &deformed, &mapX, &mapY, gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
	m.Close()
	m = deformed

	if rng.Float64() < 0.5 {
		k := max(1, int(size*uniform(rng, 0.01, 0.05)))
		kernel := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(k, k))
		gocv.Erode(m, &m, kernel)
		kernel.Close()
	}
	sigma := size * uniform(rng, 0.01, 0.08)
	ks := int(sigma*3)*2 + 1
	gocv.GaussianBlur(m, &m, image.Pt(ks, ks), sigma, sigma, gocv.BorderReflect101)
	return m
}

// landmarkEllipse is the inner face's ellipse from its landmarks: centred
// between the eyes and the mouth a little below halfway, as wide as 1.05-1.4
// times the eyes' distance and as tall as 1.25-1.55 times the eyes-to-mouth
// distance (the crop ellipse's proportions on a detector's face), turned
// with the eyes' line. Measured on BenchmarkTeachCamera, the convex hull of
// the five points grown to the brows and chin taught heads that the
// backbone, trained on ellipse blends, told apart less well.
func landmarkEllipse(lm Landmarks, size float64, rng *rand.Rand) (image.Point, image.Point, float64) {
	eyeX, eyeY := float64(lm[1][0]-lm[0][0]), float64(lm[1][1]-lm[0][1])
	eyes := [2]float64{float64(lm[0][0]+lm[1][0]) / 2, float64(lm[0][1]+lm[1][1]) / 2}
	mouth := [2]float64{float64(lm[3][0]+lm[4][0]) / 2, float64(lm[3][1]+lm[4][1]) / 2}
	downX, downY := mouth[0]-eyes[0], mouth[1]-eyes[1]
	d, h := math.Hypot(eyeX, eyeY), math.Hypot(downX, downY)
	if d < 1 {
		d = size * 0.3
	}
	if h < 1 {
		h = size * 0.3
	}
	k := uniform(rng, 0.5, 0.65)
	c := image.Pt(int(math.Round(eyes[0]+k*downX)), int(math.Round(eyes[1]+k*downY)))
	axes := image.Pt(int(math.Round(d*uniform(rng, 1.05, 1.4))), int(math.Round(h*uniform(rng, 1.25, 1.55))))
	return c, axes, math.Atan2(eyeY, eyeX)*180/math.Pi + uniform(rng, -10, 10)
}

// warp moves, scales (about the centre) and turns (degrees) src into dst.
func warp(src gocv.Mat, dst *gocv.Mat, dx, dy, scale, angle float64, border gocv.BorderType) {
	w, h := float64(src.Cols()), float64(src.Rows())
	cx, cy := (w-1)/2, (h-1)/2
	a := angle * math.Pi / 180
	c, s := scale*math.Cos(a), scale*math.Sin(a)
	// OpenCV's getRotationMatrix2D about (cx, cy), then the shift.
	vals := [2][3]float64{{c, s, (1-c)*cx - s*cy + dx}, {-s, c, s*cx + (1-c)*cy + dy}}
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	for r := range 2 {
		for k := range 3 {
			m.SetDoubleAt(r, k, vals[r][k])
		}
	}
	gocv.WarpAffineWithParams(src, dst, m, image.Pt(src.Cols(), src.Rows()), gocv.InterpolationLinear, border, color.RGBA{})
}

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

func clamp8(v float32) byte { return byte(min(max(v+0.5, 0), 255)) }

func floatBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		u := math.Float32bits(x)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}
