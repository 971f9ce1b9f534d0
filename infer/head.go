package infer

import (
	"fmt"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
)

// Head turns backbone features into two logits per face: [real, fake].
// Its methods are safe for concurrent use; runs are serialised.
type Head struct {
	r    *runner
	meta spec.Metadata
	id   string
}

// LoadHead opens a head: input "features" with featureSize floats per face
// (any shape, e.g. [N,1280,4,4] or [N,20480]), output "logits" [N,2]. A head
// made for another backbone or input size is refused.
func LoadHead(eng *engine.Engine, path string, featureSize int) (*Head, error) {
	id, meta, err := readModel(path, spec.RoleHead)
	if err != nil {
		return nil, err
	}
	sess, err := eng.Open(path, []string{"features"}, []string{"logits"})
	if err != nil {
		return nil, err
	}
	in, out := dimsOf(sess.Inputs, "features"), dimsOf(sess.Outputs, "logits")
	inShape, err := headInputShape(meta, in)
	if err == nil && product(inShape) != featureSize {
		err = fmt.Errorf("it takes %d features per face (%v, made for %dx%d input) but the backbone gives %d: export the head at the backbone's input size",
			product(inShape), inShape, meta.InputSize, meta.InputSize, featureSize)
	}
	if err == nil && (len(out) != 2 || (out[1] > 0 && out[1] != 2)) {
		err = fmt.Errorf("output logits is %v, want [N,2]", out)
	}
	if err != nil {
		sess.Destroy()
		return nil, fmt.Errorf("head %s: %w", path, err)
	}
	h := &Head{r: newRunner(sess, inShape, []int64{2}), meta: meta, id: id}
	if err := h.r.probe(); err != nil {
		h.r.close()
		return nil, fmt.Errorf("head %s: trial run: %w", path, err)
	}
	return h, nil
}

// headInputShape is the per-face input shape: the declared one when fixed,
// else the metadata's feature shape for a 4-d input.
func headInputShape(meta spec.Metadata, in []int64) ([]int64, error) {
	if len(in) < 2 {
		return nil, fmt.Errorf("input features is %v, want [N,...]", in)
	}
	s, err := staticDims(in)
	if err == nil {
		return s, nil
	}
	if len(in) == 4 {
		fs := meta.FeatureShape
		return []int64{int64(fs[0]), int64(fs[1]), int64(fs[2])}, nil
	}
	return nil, fmt.Errorf("input features is %v: only the batch dimension may be dynamic", in)
}

// ID is the first 12 hex digits of the model file's sha256.
func (h *Head) ID() string { return h.id }

// Meta is the head's metadata.
func (h *Head) Meta() spec.Metadata { return h.meta }

// FeatureSize is the number of floats per face the head takes.
func (h *Head) FeatureSize() int { return h.r.inSize }

// Threshold is the decision threshold calibrated and stored with the head, if any.
func (h *Head) Threshold() spec.Threshold { return h.meta.Threshold }

// Logits runs n faces' features (n*FeatureSize() floats) and writes n*2 logits to dst.
func (h *Head) Logits(features []float32, n int, dst []float32) error {
	if err := h.r.run(features, n, dst); err != nil {
		return fmt.Errorf("head %s: %w", h.id, err)
	}
	return nil
}

// Close frees the session after any run in flight; later Logits calls fail.
func (h *Head) Close() error { return h.r.close() }
