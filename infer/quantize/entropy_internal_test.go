package quantize

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestEntropyBins: on |x| of a normal distribution, entropy calibration
// clips the rare tail (TensorRT's picks about 3 to 5 standard deviations at
// 8 bits) and keeps everything of a uniform one.
func TestEntropyBins(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name   string
		draw   func() float64
		levels int
		lo, hi float64 // the threshold wanted, in the draw's units
	}{
		{"normal", r.NormFloat64, 128, 2.5, 6},
		{"uniform", func() float64 { return r.Float64() * 10 }, 128, 9.5, 10.01},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := tensorStats{min: float32(math.Inf(1)), max: float32(math.Inf(-1))}
			x := make([]float32, 200000)
			for i := range x {
				x[i] = float32(c.draw())
			}
			s.add(x, true)
			thr := float64(entropyBins(s.hist, c.levels)) * s.top / percentileBins
			if thr < c.lo || thr > c.hi {
				t.Errorf("threshold %.3f (max %.3f), want %g..%g", thr, s.top, c.lo, c.hi)
			}
		})
	}
}
