package quantize_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/quantize"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// BenchmarkBackbone times the float backbone and its INT8 quantisation side
// by side at batches 1 and 8 (faces/s is what the 1.5x target is about). It
// uses the DFDC MnasNet calibrated on shared face crops when ../shared is
// there, else `make models`' backbone calibrated on random inputs (the speed
// does not depend on the weights).
//
//	go test -run '^$' -bench Backbone -benchtime 40x ./infer/quantize
func BenchmarkBackbone(b *testing.B) {
	eng := newEngine(b)
	const size = 128
	float, _ := testenv.Models(b)
	var src quantize.Source = &sliceSource{x: randomBatch(64, size, 1), per: 3 * size * size}
	if shared, ok := testenv.SharedDir(b); ok {
		float = filepath.Join(shared, "models/backbone/mnasnet0_75_dfdc_features.onnx")
		src = sharedFaces(b, filepath.Join(shared, "data/dfdc-faces/train"), 64)
	}
	unsigned, _ := quantize.UnsignedActivationsAdvice()
	int8 := quantizeFile(b, eng, float, src, size, quantize.CalibrationOptions{Method: quantize.MethodMinMax}, quantize.Options{UnsignedActivations: unsigned})
	for _, n := range []int{1, 8} {
		for _, m := range []struct{ name, path string }{{"fp32", float}, {"int8", int8}} {
			b.Run(fmt.Sprintf("%s/batch=%d", m.name, n), func(b *testing.B) {
				bb, err := infer.LoadBackbone(eng, m.path)
				if err != nil {
					b.Fatal(err)
				}
				defer bb.Close()
				in := randomBatch(n, size, 2)
				out := make([]float32, n*bb.FeatureSize())
				if err := bb.Features(in, n, out); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					if err := bb.Features(in, n, out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "faces/s")
				b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N*n), "ms/face")
			})
		}
	}
}
