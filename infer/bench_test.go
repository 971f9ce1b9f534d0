package infer

import (
	"fmt"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// BenchmarkClassify measures backbone + head on the `make models` export; the
// ms/face metric is what a camera's face budget is planned with. The allocations
// it reports are all inside onnxruntime_go's Run.
func BenchmarkClassify(b *testing.B) {
	eng := newEngine(b)
	bb, hd := testenv.Models(b)
	c, err := LoadClassifier(eng, bb, hd)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			in := randomBatch(n, c.InputSize(), 1)
			p := make([]float32, n)
			if _, err := c.Classify(in, n, p); err != nil { // warm-up: lazily made tensors
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Classify(in, n, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N*n), "ms/face")
		})
	}
}
