package infer

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deepfaked/deepfaked/infer/onnxpb"
	"github.com/deepfaked/deepfaked/infer/quantize"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// sliceSource hands out n faces of one batch to the calibrator.
type sliceSource struct {
	x         []float32
	per, next int
}

func (s *sliceSource) Total() int { return len(s.x) / s.per }
func (s *sliceSource) Next(_ context.Context, dst []float32) error {
	if s.next >= s.Total() {
		return io.EOF
	}
	copy(dst, s.x[s.next*s.per:(s.next+1)*s.per])
	s.next++
	return nil
}

// TestPooledBackbone: export_model.py --pool gives a backbone whose features
// are the global average of the plain export's 4x4 map ([1280,1,1]); the
// daemon loads it with a head on 1280 features, and the quantiser turns it
// into INT8 (GlobalAveragePool stays float, after the last quantised Relu).
func TestPooledBackbone(t *testing.T) {
	testenv.Long(t)
	eng := newEngine(t)
	bb, _ := export(t, "--weights", "random", "--seed", "4")
	pbb, phd := export(t, "--weights", "random", "--seed", "4", "--pool")
	plain, err := LoadBackbone(eng, bb)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	c, err := LoadClassifier(eng, pbb, phd, ClassifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Meta().FeatureShape != [3]int{1280, 1, 1} || c.FeatureSize() != 1280 {
		t.Fatalf("pooled: feature shape %v, size %d, want [1280 1 1] and 1280", c.Meta().FeatureShape, c.FeatureSize())
	}
	const n, s = 3, 128
	x := randomBatch(n, s, 5)
	cells := make([]float32, n*1280*16)
	if err := plain.Features(x, n, cells); err != nil {
		t.Fatal(err)
	}
	pooled, err := LoadBackbone(eng, pbb)
	if err != nil {
		t.Fatal(err)
	}
	defer pooled.Close()
	got := make([]float32, n*1280)
	if err := pooled.Features(x, n, got); err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i := range n * 1280 {
		var sum float64
		for k := range 16 {
			sum += float64(cells[i*16+k])
		}
		worst = max(worst, math.Abs(sum/16-float64(got[i])))
	}
	if worst > 1e-4 {
		t.Errorf("pooled features differ from the mean of the 4x4 map by up to %g", worst)
	}
	p := make([]float32, n)
	if _, err := c.Classify(x, n, p); err != nil {
		t.Fatal(err)
	}

	f, err := quantize.Load(pbb)
	if err != nil {
		t.Fatalf("the quantiser refuses a pooled backbone: %v", err)
	}
	cal, err := quantize.CalibrateModel(context.Background(), eng, f, &sliceSource{x: randomBatch(16, s, 6), per: 3 * s * s},
		quantize.RunOptions{CalibrationOptions: quantize.CalibrationOptions{Method: quantize.MethodMinMax, TempDir: t.TempDir()},
			Size: s, Batch: 8, Equalize: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := quantize.Options{}
	opts.Metadata = quantize.MetadataFor(quantize.Info{Method: cal.Method, Equalized: cal.Equalized, Options: opts,
		SetSHA256: cal.SetSHA256, Samples: cal.Samples, SourceSHA256: f.SHA256, QuantizedAt: time.Now(),
		Backbone: pooled.Meta(), FloatMetadata: quantize.Metadata(f.Model)})
	data, err := quantize.Quantize(cal.Float, cal.Ranges, opts)
	if err != nil {
		t.Fatal(err)
	}
	int8Path := filepath.Join(t.TempDir(), "backbone.int8.onnx")
	if err := os.WriteFile(int8Path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	q, err := LoadClassifier(eng, int8Path, phd, ClassifierOptions{})
	if err != nil {
		t.Fatalf("the INT8 pooled backbone does not load: %v", err)
	}
	defer q.Close()
	// The map the average reads stays float, as an unpooled backbone's output
	// does: a Relu (not folded into a quantiser) feeds the GlobalAveragePool.
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	producer := map[string]string{}
	for _, nd := range m.GetGraph().GetNode() {
		producer[nd.GetOutput()[0]] = nd.GetOpType()
	}
	for _, nd := range m.GetGraph().GetNode() {
		if nd.GetOpType() == "GlobalAveragePool" {
			if p := producer[nd.GetInput()[0]]; p != "Relu" {
				t.Errorf("the GlobalAveragePool reads a %s output, want the float Relu's", p)
			}
		}
	}
	if q.Precision() != "int8" || q.FeatureSize() != 1280 {
		t.Errorf("INT8 pooled: precision %q, %d features", q.Precision(), q.FeatureSize())
	}
	if _, err := q.Classify(x, n, p); err != nil {
		t.Fatal(err)
	}
}
