package infer

import (
	"fmt"
	"log/slog"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
)

// Backbone turns normalised face crops into features.
// Its methods are safe for concurrent use; runs are serialised.
type Backbone struct {
	r    *runner
	meta spec.Metadata
	id   string
}

// LoadBackbone opens a backbone exported by tools/export_model.py: input
// "input" [N,3,S,S], output "features" [N,C,H,W]. A model without deepfaked
// metadata is taken to be a torchvision MnasNet at the size its input declares
// (128 when dynamic), with a warning.
func LoadBackbone(eng *engine.Engine, path string) (*Backbone, error) {
	id, meta, err := readModel(path, spec.RoleBackbone)
	if err != nil {
		return nil, err
	}
	sess, err := eng.Open(path, []string{"input"}, []string{"features"})
	if err != nil {
		return nil, err
	}
	if err := checkBackboneShapes(&meta, dimsOf(sess.Inputs, "input"), dimsOf(sess.Outputs, "features")); err != nil {
		sess.Destroy()
		return nil, fmt.Errorf("backbone %s: %w", path, err)
	}
	if meta.Defaulted {
		slog.Warn("backbone has no deepfaked metadata; assuming a torchvision MnasNet with ImageNet normalisation, RGB input",
			"model", path, "input_size", meta.InputSize, "feature_shape", meta.FeatureShape)
	}
	s := int64(meta.InputSize)
	fs := meta.FeatureShape
	b := &Backbone{
		r:    newRunner(sess, []int64{3, s, s}, []int64{int64(fs[0]), int64(fs[1]), int64(fs[2])}),
		meta: meta,
		id:   id,
	}
	if err := b.r.probe(); err != nil {
		b.r.close()
		return nil, fmt.Errorf("backbone %s: trial run at %dx%d: %w", path, s, s, err)
	}
	return b, nil
}

// checkBackboneShapes checks the declared shapes against the metadata. For a
// model without our metadata it takes the input size and feature shape from
// the declared shapes where they are fixed.
func checkBackboneShapes(meta *spec.Metadata, in, out []int64) error {
	if len(in) != 4 {
		return fmt.Errorf("input has rank %d (%v), want 4: [N,3,S,S]", len(in), in)
	}
	if len(out) != 4 {
		return fmt.Errorf("output has rank %d (%v), want 4: [N,C,H,W]", len(out), out)
	}
	if in[1] > 0 && in[1] != 3 {
		return fmt.Errorf("input has %d channels (%v), want 3", in[1], in)
	}
	if meta.Defaulted && in[2] > 0 {
		meta.InputSize = int(in[2])
		meta.FeatureShape = [3]int{1280, (meta.InputSize + 31) / 32, (meta.InputSize + 31) / 32}
		if out[1] > 0 && out[2] > 0 && out[3] > 0 {
			meta.FeatureShape = [3]int{int(out[1]), int(out[2]), int(out[3])}
		}
	}
	s := int64(meta.InputSize)
	if (in[2] > 0 && in[2] != s) || (in[3] > 0 && in[3] != s) {
		return fmt.Errorf("input is %v but metadata %s says %d", in, spec.KeyInputSize, s)
	}
	// MnasNet downsamples by 32; a feature map of another size means the
	// metadata lies. A pooled backbone (export_model.py --pool) ends with the
	// global average: 1x1.
	cells := (meta.InputSize + 31) / 32
	pooled := meta.FeatureShape[1] == 1 && meta.FeatureShape[2] == 1
	if !pooled && (meta.FeatureShape[1] != cells || meta.FeatureShape[2] != cells) {
		return fmt.Errorf("metadata %s=%v does not fit input size %d (a stride-32 backbone gives %dx%d, or 1x1 pooled)",
			spec.KeyFeatureShape, meta.FeatureShape, meta.InputSize, cells, cells)
	}
	for i, d := range out[1:] {
		if d > 0 && int(d) != meta.FeatureShape[i] {
			return fmt.Errorf("output is %v but metadata %s says %v", out, spec.KeyFeatureShape, meta.FeatureShape)
		}
	}
	return nil
}

// ID is the first 12 hex digits of the model file's sha256.
func (b *Backbone) ID() string { return b.id }

// Meta is the backbone's metadata (preprocessing needs its size, mean, std and colour order).
func (b *Backbone) Meta() spec.Metadata { return b.meta }

// FeatureSize is the number of floats per face in Features' output.
func (b *Backbone) FeatureSize() int { return b.r.outSize }

// Features runs n faces (NCHW, n*3*S*S floats) and writes n*FeatureSize() floats to dst.
func (b *Backbone) Features(input []float32, n int, dst []float32) error {
	if err := b.r.run(input, n, dst); err != nil {
		return fmt.Errorf("backbone %s: %w", b.id, err)
	}
	return nil
}

// Close frees the session, after any run in flight.
func (b *Backbone) Close() error { return b.r.close() }
