// Package preprocess turns a face box into model input: a square crop with
// margin, resized to S×S, in the model's channel order (RGB or BGR),
// normalised, NCHW float32 in a caller's buffer.
package preprocess

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// Channel orders a model may take (the backbone metadata's color_order).
const (
	RGB = "RGB"
	BGR = "BGR"
)

// CheckColorOrder says what is wrong with a channel order.
func CheckColorOrder(order string) error {
	if order != RGB && order != BGR {
		return fmt.Errorf("colour order %q: want %s or %s", order, RGB, BGR)
	}
	return nil
}

// Params describe the model input. Every field is used as given: the
// defaults live in the config and the model's metadata.
type Params struct {
	Size int
	// Mean and Std normalise x/255 per input channel, in ColorOrder.
	Mean, Std [3]float32
	// ColorOrder is the order of the input's channel planes: RGB or BGR.
	ColorOrder string
	// Margin is the fraction of the box's longer side added on each side.
	Margin float64
}

// Preprocessor fills model inputs. It is not safe for concurrent use.
type Preprocessor struct {
	p Params
	// Per byte of an OpenCV pixel (B, G, R): the plane it goes to, and
	// 1/(255*std) and -mean/std of that plane's channel.
	plane    [3]int
	mul, add [3]float32
	resized  gocv.Mat
}

// New checks p and makes a Preprocessor.
func New(p Params) (*Preprocessor, error) {
	if err := CheckColorOrder(p.ColorOrder); err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	plane := [3]int{0, 1, 2} // BGR frame channels in BGR planes
	if p.ColorOrder == RGB {
		plane = [3]int{2, 1, 0}
	}
	if p.Size < 1 || p.Size > 4096 {
		return nil, fmt.Errorf("preprocess: input size %d out of range 1..4096", p.Size)
	}
	if p.Margin < 0 || p.Margin > 10 || math.IsNaN(p.Margin) {
		return nil, fmt.Errorf("preprocess: margin %v out of range 0..10", p.Margin)
	}
	pp := &Preprocessor{p: p, plane: plane}
	for c := range 3 {
		s := p.Std[c]
		if !(s > 0) || math.IsInf(float64(s), 0) || math.IsNaN(float64(p.Mean[c])) || math.IsInf(float64(p.Mean[c]), 0) {
			return nil, fmt.Errorf("preprocess: channel %d mean %v / std %v: std must be > 0 and both finite", c, p.Mean[c], s)
		}
	}
	for k, c := range plane {
		pp.mul[k] = 1 / (255 * p.Std[c])
		pp.add[k] = -p.Mean[c] / p.Std[c]
	}
	pp.resized = gocv.NewMat()
	return pp, nil
}

// Params are the parameters in use.
func (pp *Preprocessor) Params() Params { return pp.p }

// Len is the number of float32 one sample takes: 3*Size*Size.
func (pp *Preprocessor) Len() int { return 3 * pp.p.Size * pp.p.Size }

// Crop is the square around box, enlarged by the margin on each side and
// shifted to stay inside a frame of the given size. A square larger than the
// frame shrinks to the frame's shorter side, so faces are never distorted.
// An empty box or frame gives an empty rectangle.
func (pp *Preprocessor) Crop(box image.Rectangle, frame image.Point) image.Rectangle {
	box = box.Canon()
	if box.Empty() || frame.X <= 0 || frame.Y <= 0 {
		return image.Rectangle{}
	}
	side := int(math.Round(float64(max(box.Dx(), box.Dy())) * (1 + 2*pp.p.Margin)))
	side = max(1, min(side, frame.X, frame.Y))
	// Centre in doubled coordinates keeps odd sizes exact.
	x0 := (box.Min.X + box.Max.X - side) / 2
	y0 := (box.Min.Y + box.Max.Y - side) / 2
	x0 = min(max(x0, 0), frame.X-side)
	y0 = min(max(y0, 0), frame.Y-side)
	return image.Rect(x0, y0, x0+side, y0+side)
}

// Fill writes the crop of a BGR 8-bit image into dst[:Len()] as one NCHW
// sample in the colour order, normalised as (x/255-mean)/std.
func (pp *Preprocessor) Fill(img gocv.Mat, crop image.Rectangle, dst []float32) error {
	n := pp.Len()
	if len(dst) < n {
		return fmt.Errorf("preprocess: buffer holds %d floats, one %dx%d sample needs %d", len(dst), pp.p.Size, pp.p.Size, n)
	}
	if img.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("preprocess: image type %v, want 8-bit 3-channel BGR", img.Type())
	}
	if crop.Empty() || !crop.In(image.Rect(0, 0, img.Cols(), img.Rows())) {
		return fmt.Errorf("preprocess: crop %v is empty or outside the %dx%d image", crop, img.Cols(), img.Rows())
	}
	roi := img.Region(crop)
	// Area averaging is what antialiased resizers (PIL, torchvision) do when shrinking.
	gocv.Resize(roi, &pp.resized, image.Pt(pp.p.Size, pp.p.Size), 0, 0, gocv.InterpolationArea)
	roi.Close()
	pix, err := pp.resized.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	plane := pp.p.Size * pp.p.Size
	planes := [3][]float32{dst[:plane], dst[plane : 2*plane], dst[2*plane : n]}
	b, g, r := planes[pp.plane[0]], planes[pp.plane[1]], planes[pp.plane[2]]
	pix = pix[:3*plane]
	for i := range plane {
		px := pix[3*i : 3*i+3 : 3*i+3]
		b[i] = float32(px[0])*pp.mul[0] + pp.add[0]
		g[i] = float32(px[1])*pp.mul[1] + pp.add[1]
		r[i] = float32(px[2])*pp.mul[2] + pp.add[2]
	}
	return nil
}

// Close frees the reused Mat.
func (pp *Preprocessor) Close() error { return pp.resized.Close() }

// Decode turns one NCHW model input of 3×S×S floats whose planes are in
// colorOrder (RGB or BGR), each normalised as (x/255-mean)/std,
// back into an S×S BGR 8-bit image in dst: what the model saw, for the
// collector's crops and the snapshots.
func Decode(input []float32, mean, std [3]float32, colorOrder string, dst *gocv.Mat) error {
	if err := CheckColorOrder(colorOrder); err != nil {
		return err
	}
	s, err := InputSize(input)
	if err != nil {
		return err
	}
	plane := s * s
	if dst.Rows() != s || dst.Cols() != s || dst.Type() != gocv.MatTypeCV8UC3 {
		dst.Close()
		*dst = gocv.NewMatWithSize(s, s, gocv.MatTypeCV8UC3)
	}
	pix, err := dst.DataPtrUint8()
	if err != nil {
		return err
	}
	for ch := range 3 { // planes into BGR pixels
		at := ch // BGR plane ch is pixel byte ch
		if colorOrder == RGB {
			at = 2 - ch
		}
		m, sd := mean[ch]*255, std[ch]*255
		src := input[ch*plane : (ch+1)*plane]
		for i, x := range src {
			pix[3*i+at] = uint8(min(max(x*sd+m, 0), 255) + 0.5) // rounded
		}
	}
	return nil
}

// InputSize is S of a 3×S×S model input.
func InputSize(input []float32) (int, error) {
	s := int(math.Sqrt(float64(len(input) / 3)))
	if s == 0 || 3*s*s != len(input) {
		return 0, fmt.Errorf("model input of %d floats is not 3×S×S", len(input))
	}
	return s, nil
}
