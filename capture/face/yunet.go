package face

import (
	"image"
	"math"

	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"
)

const (
	// yunetSide is the longest side frames are scaled down to: YuNet finds
	// faces down to ~10 input pixels, so a 720p frame keeps faces of ~25 px.
	yunetSide = 640
)

var yunetStrides = [3]int{8, 16, 32}

// yunet decodes OpenCV Zoo's YuNet: for each stride, per anchor cell
// cls/obj scores, bbox (dx, dy, log w, log h) and kps (five points' dx, dy)
// in stride units.
type yunet struct {
	*net
	frame image.Point // frame size the tensors were made for
	in    image.Point // network input size (multiple of 32)
	scale float32     // input pixels per frame pixel
}

func newYuNet(opts Options) (Detector, error) {
	names := []string{"cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8", "bbox_16", "bbox_32", "kps_8", "kps_16", "kps_32"}
	n, err := openNet(opts, []string{"input"}, names)
	if err != nil {
		return nil, err
	}
	return &yunet{net: n}, nil
}

func (d *yunet) Detect(img gocv.Mat, dst []Box) ([]Box, error) {
	dst = dst[:0]
	if img.Empty() {
		return dst, nil
	}
	w, h := img.Cols(), img.Rows()
	if f := image.Pt(w, h); f != d.frame {
		if err := d.shape(f); err != nil {
			return dst, err
		}
	}
	rs := image.Pt(int(float32(w)*d.scale+0.5), int(float32(h)*d.scale+0.5))
	if err := d.resize(img, rs); err != nil {
		return dst, err
	}
	if err := d.fill(d.in.Y, d.in.X, false, 0, 1); err != nil {
		return dst, err
	}
	if err := d.run(); err != nil {
		return dst, err
	}
	inv := 1 / d.scale
	for si, s := range yunetStrides {
		cls, obj, bbox, kps := d.outputs[si].GetData(), d.outputs[3+si].GetData(), d.outputs[6+si].GetData(), d.outputs[9+si].GetData()
		cols := d.in.X / s
		fs := float32(s)
		for i := range cls {
			score := float32(math.Sqrt(float64(clamp01(cls[i]) * clamp01(obj[i]))))
			if score < d.score {
				continue
			}
			b := bbox[4*i : 4*i+4]
			col, row := float32(i%cols), float32(i/cols)
			cx, cy := (col+b[0])*fs, (row+b[1])*fs
			bw, bh := float32(math.Exp(float64(b[2])))*fs, float32(math.Exp(float64(b[3])))*fs
			r := clampBox((cx-bw/2)*inv, (cy-bh/2)*inv, (cx+bw/2)*inv, (cy+bh/2)*inv, w, h)
			if r.Empty() {
				continue
			}
			box := Box{Rect: r, Score: score, HasLandmarks: true}
			// Each point is an offset from the anchor cell, in stride units.
			for n, k := range kps[10*i : 10*i+10] {
				cell := col
				if n%2 == 1 {
					cell = row
				}
				box.Landmarks[n/2][n%2] = (cell + k) * fs * inv
			}
			dst = append(dst, box)
		}
	}
	return finish(dst, d.minSize), nil
}

// shape sizes the input for frames of size f: scaled so the longest side is
// at most yunetSide, padded up to a multiple of 32 (the largest stride).
func (d *yunet) shape(f image.Point) error {
	d.scale = min(1, float32(yunetSide)/float32(max(f.X, f.Y)))
	d.in = image.Pt(ceil32(int(float32(f.X)*d.scale+0.5)), ceil32(int(float32(f.Y)*d.scale+0.5)))
	var outs []ort.Shape
	for _, k := range []int64{1, 1, 4, 10} { // cls, obj, bbox, kps
		for _, s := range yunetStrides {
			outs = append(outs, ort.NewShape(1, int64((d.in.X/s)*(d.in.Y/s)), k))
		}
	}
	if err := d.setShapes(ort.NewShape(1, 3, int64(d.in.Y), int64(d.in.X)), outs...); err != nil {
		return err
	}
	d.frame = f
	return nil
}

func ceil32(v int) int { return (v + 31) / 32 * 32 }

func clamp01(v float32) float32 { return min(max(v, 0), 1) }
