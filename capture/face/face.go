// Package face finds faces in frames: Haar cascades (OpenCV), YuNet and
// UltraFace (ONNX Runtime), or "none" (the whole frame is the face).
package face

import (
	"cmp"
	"fmt"
	"image"
	"os"
	"slices"
	"strings"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/geom"
)

// Detector kinds.
const (
	Haar      = "haar"
	YuNet     = "yunet"
	UltraFace = "ultraface"
	None      = "none"
)

// Kinds lists the detector kinds New accepts.
var Kinds = []string{Haar, YuNet, UltraFace, None}

// Box is a face in frame pixels.
type Box struct {
	Rect  image.Rectangle
	Score float32
	// Landmarks are the eyes, the nose tip and the mouth corners in frame
	// pixels, in YuNet's order (the eye on the image's left first), when
	// HasLandmarks: haar and ultraface give none.
	Landmarks    [5][2]float32
	HasLandmarks bool
}

// Detector finds faces. Detect appends to dst[:0] the faces in a BGR frame,
// in frame pixels, clamped to the frame, best score first. A Detector is not
// safe for concurrent use.
type Detector interface {
	Detect(img gocv.Mat, dst []Box) ([]Box, error)
	Close() error
}

// Options configure a detector. Every field is used as given: the defaults
// live in the config.
type Options struct {
	// Kind is haar, yunet, ultraface or none.
	Kind string
	// Model is the ONNX file for yunet/ultraface, or a cascade XML overriding
	// haar's default.
	Model string
	// MinSize is the smallest face side in frame pixels; 0 keeps every size
	// the detector finds.
	MinSize int
	// Score is the confidence threshold (not used by haar, which has none).
	Score float32
	// Engine runs the ONNX detectors.
	Engine *engine.Engine
}

// nms is the IoU above which overlapping boxes are merged.
const nms = 0.3

// New makes the detector opts.Kind names.
func New(opts Options) (Detector, error) {
	if opts.MinSize < 0 || !(opts.Score >= 0 && opts.Score <= 1) {
		return nil, fmt.Errorf("face detector %s: min_size %d must be >= 0 and score %v in [0,1]", opts.Kind, opts.MinSize, opts.Score)
	}
	switch opts.Kind {
	case Haar:
		return newHaar(opts)
	case YuNet, UltraFace:
		if opts.Model == "" {
			return nil, fmt.Errorf("face detector %s needs a model file (%s.onnx)", opts.Kind, opts.Kind)
		}
		if opts.Engine == nil {
			return nil, fmt.Errorf("face detector %s needs an ONNX Runtime engine", opts.Kind)
		}
		if _, err := os.Stat(opts.Model); err != nil {
			return nil, fmt.Errorf("face detector %s model: %w", opts.Kind, err)
		}
		if opts.Kind == YuNet {
			return newYuNet(opts)
		}
		return newUltraFace(opts)
	case None:
		return whole{}, nil
	}
	return nil, fmt.Errorf("unknown face detector %q (allowed: %s)", opts.Kind, strings.Join(Kinds, ", "))
}

// whole reports the whole frame as one face, for feeds already cropped to a face.
type whole struct{}

func (whole) Detect(img gocv.Mat, dst []Box) ([]Box, error) {
	dst = dst[:0]
	if img.Empty() {
		return dst, nil
	}
	return append(dst, Box{Rect: image.Rect(0, 0, img.Cols(), img.Rows()), Score: 1}), nil
}

func (whole) Close() error { return nil }

// finish sorts boxes by score, merges overlaps above nms (greedy) and drops
// boxes smaller than minSize, in place.
func finish(boxes []Box, minSize int) []Box {
	slices.SortFunc(boxes, func(a, b Box) int { return cmp.Compare(b.Score, a.Score) })
	keep := boxes[:0]
	for _, b := range boxes {
		if b.Rect.Dx() < minSize || b.Rect.Dy() < minSize {
			continue
		}
		dup := false
		for _, k := range keep {
			if geom.IoU(k.Rect, b.Rect) > float64(nms) {
				dup = true
				break
			}
		}
		if !dup {
			keep = append(keep, b)
		}
	}
	return keep
}

// clampBox converts float corners to a pixel rectangle inside a w×h frame.
func clampBox(x1, y1, x2, y2 float32, w, h int) image.Rectangle {
	return image.Rect(int(x1+0.5), int(y1+0.5), int(x2+0.5), int(y2+0.5)).Intersect(image.Rect(0, 0, w, h))
}
