package face

import (
	"image"

	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"
)

const (
	ultraW, ultraH = 320, 240
	ultraAnchors   = 4420
)

// ultraface runs Ultra-Light-Fast-Generic-Face-Detector RFB-320: the whole
// frame stretched to 320x240 RGB, (x-127)/128; outputs per-anchor softmax
// scores (background, face) and decoded corner boxes in 0..1.
type ultraface struct{ *net }

func newUltraFace(opts Options) (Detector, error) {
	// The model lists its weights as inputs too (old exporter): bind "input" only.
	n, err := openNet(opts, []string{"input"}, []string{"scores", "boxes"})
	if err != nil {
		return nil, err
	}
	d := &ultraface{n}
	if err := n.setShapes(ort.NewShape(1, 3, ultraH, ultraW), ort.NewShape(1, ultraAnchors, 2), ort.NewShape(1, ultraAnchors, 4)); err != nil {
		n.Close()
		return nil, err
	}
	return d, nil
}

func (d *ultraface) Detect(img gocv.Mat, dst []Box) ([]Box, error) {
	dst = dst[:0]
	if img.Empty() {
		return dst, nil
	}
	if err := d.resize(img, image.Pt(ultraW, ultraH)); err != nil {
		return dst, err
	}
	if err := d.fill(ultraH, ultraW, true, 127, 1.0/128); err != nil {
		return dst, err
	}
	if err := d.run(); err != nil {
		return dst, err
	}
	w, h := img.Cols(), img.Rows()
	fw, fh := float32(w), float32(h)
	scores, boxes := d.outputs[0].GetData(), d.outputs[1].GetData()
	for i := 0; i < ultraAnchors; i++ {
		s := scores[2*i+1]
		if s < d.score {
			continue
		}
		b := boxes[4*i : 4*i+4]
		r := clampBox(b[0]*fw, b[1]*fh, b[2]*fw, b[3]*fh, w, h)
		if !r.Empty() {
			dst = append(dst, Box{Rect: r, Score: s})
		}
	}
	return finish(dst, d.minSize), nil
}
