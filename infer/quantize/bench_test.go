package quantize_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/quantize"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// BenchmarkBackbone times the float backbone, its INT8 quantisation and the
// INT8 model with its stem and last block left in float (--keep-float, what
// release 2 ships: see docs/models.md, Quantising) side by side: each iteration runs
// one batch through each, so all see the same machine (the 2-core test
// machine is shared, and its load drifts within a minute). It reports each
// model's faces/s and the speed-ups over float. It uses the
// DFDC MnasNet calibrated on shared face crops when ../shared is there, else
// `make models`' backbone calibrated on random inputs (speed does not depend
// on the weights).
//
//	go test -run '^$' -bench Backbone -benchtime 100x ./infer/quantize
func BenchmarkBackbone(b *testing.B) {
	eng := newEngine(b)
	const size = 128
	float, _ := testenv.Models(b)
	src := func() quantize.Source { return &sliceSource{x: randomBatch(64, size, 1), per: 3 * size * size} }
	if shared, ok := testenv.SharedDir(b); ok {
		float = filepath.Join(shared, "models/backbone/mnasnet0_75_dfdc_features.onnx")
		src = func() quantize.Source { return sharedFaces(b, filepath.Join(shared, "data/dfdc-faces/train"), 64) }
	}
	unsigned, _ := quantize.UnsignedActivationsAdvice()
	cal := quantize.CalibrationOptions{Method: quantize.MethodPercentile, Percentile: 99.999}
	int8 := quantizeFile(b, eng, float, src(), size, cal, quantize.Options{UnsignedActivations: unsigned})
	// Node names of an unpooled export: the first two Convs and block 13.
	mixed := quantizeFile(b, eng, float, src(), size, cal, quantize.Options{UnsignedActivations: unsigned}, "/0/", "/3/", "/13/")
	var models [3]*infer.Backbone
	for i, p := range []string{float, int8, mixed} {
		bb, err := infer.LoadBackbone(eng, p)
		if err != nil {
			b.Fatal(err)
		}
		defer bb.Close()
		models[i] = bb
	}
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			in := randomBatch(n, size, 2)
			out := make([]float32, n*models[0].FeatureSize())
			var spent [3]time.Duration
			for _, m := range models { // warm-up: lazily made tensors
				if err := m.Features(in, n, out); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				for i, m := range models {
					start := time.Now()
					if err := m.Features(in, n, out); err != nil {
						b.Fatal(err)
					}
					spent[i] += time.Since(start)
				}
			}
			faces := float64(b.N * n)
			b.ReportMetric(faces/spent[0].Seconds(), "fp32_faces/s")
			b.ReportMetric(faces/spent[1].Seconds(), "int8_faces/s")
			b.ReportMetric(faces/spent[2].Seconds(), "mixed_faces/s")
			b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "int8_speedup")
			b.ReportMetric(spent[0].Seconds()/spent[2].Seconds(), "mixed_speedup")
		})
	}
}
