package face

import (
	"fmt"
	"image"

	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/infer/engine"
)

// net holds what both ONNX detectors reuse across frames: the session, the
// resized frame and the input tensor.
type net struct {
	sess    *engine.Session
	resized gocv.Mat
	input   *ort.Tensor[float32]
	outputs []*ort.Tensor[float32]
	values  []ort.Value // outputs as values for Run
	minSize int
	score   float32
}

func openNet(opts Options, inputs, outputs []string) (*net, error) {
	s, err := opts.Engine.Open(opts.Model, inputs, outputs)
	if err != nil {
		return nil, fmt.Errorf("face detector %s: %w", opts.Kind, err)
	}
	return &net{sess: s, resized: gocv.NewMat(), minSize: opts.MinSize, score: opts.Score}, nil
}

// setShapes (re)makes the tensors; detectors call it when the input size changes.
func (n *net) setShapes(in ort.Shape, outs ...ort.Shape) error {
	n.destroyTensors()
	t, err := ort.NewEmptyTensor[float32](in)
	if err != nil {
		return fmt.Errorf("input tensor %v for %s: %w", in, n.sess.Path, err)
	}
	n.input = t
	for _, s := range outs {
		o, err := ort.NewEmptyTensor[float32](s)
		if err != nil {
			return fmt.Errorf("output tensor %v for %s: %w", s, n.sess.Path, err)
		}
		n.outputs = append(n.outputs, o)
		n.values = append(n.values, o)
	}
	return nil
}

func (n *net) run() error {
	if err := n.sess.Run([]ort.Value{n.input}, n.values); err != nil {
		return fmt.Errorf("run %s: %w", n.sess.Path, err)
	}
	return nil
}

// fill writes the resized BGR frame into the input tensor as planar float32
// (1,3,H,W), optionally RGB, scaled as (x-sub)*mul; the rest stays zero padding.
func (n *net) fill(h, w int, rgb bool, sub, mul float32) error {
	pix, err := n.resized.DataPtrUint8()
	if err != nil {
		return err
	}
	rw, rh := n.resized.Cols(), n.resized.Rows()
	data := n.input.GetData()
	plane := h * w
	c0, c2 := 0, 2*plane
	if rgb {
		c0, c2 = c2, c0
	}
	for y := 0; y < rh; y++ {
		row := pix[y*rw*3 : (y+1)*rw*3]
		o := y * w
		for x := 0; x < rw; x++ {
			data[c0+o+x] = (float32(row[3*x]) - sub) * mul
			data[plane+o+x] = (float32(row[3*x+1]) - sub) * mul
			data[c2+o+x] = (float32(row[3*x+2]) - sub) * mul
		}
	}
	return nil
}

func (n *net) destroyTensors() {
	if n.input != nil {
		n.input.Destroy()
		n.input = nil
	}
	for _, o := range n.outputs {
		o.Destroy()
	}
	n.outputs, n.values = n.outputs[:0], n.values[:0]
}

func (n *net) Close() error {
	n.destroyTensors()
	n.resized.Close()
	return n.sess.Destroy()
}

// resize scales a BGR frame into n.resized with the given size.
func (n *net) resize(img gocv.Mat, size image.Point) error {
	if img.Channels() != 3 {
		return fmt.Errorf("face detector wants a 3-channel BGR frame, got %d channels", img.Channels())
	}
	gocv.Resize(img, &n.resized, size, 0, 0, gocv.InterpolationLinear)
	return nil
}
