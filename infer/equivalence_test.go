package infer

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestPyTorchEquivalence exports weights with tools/export_model.py, runs one
// batch through PyTorch (tools/reference_infer.py) and through Classify, and
// requires the same features, logits and p(fake).
func TestPyTorchEquivalence(t *testing.T) {
	testenv.Long(t)
	requireTorch(t)
	const seed = 5
	cases := []struct {
		name    string
		weights func(t *testing.T) string
	}{
		{"seeded weights", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "seeded.pth")
			runTool(t, "reference_infer.py", "make-weights", "--seed", strconv.Itoa(seed), "--out", p)
			return p
		}},
		{"dfdc weights", func(t *testing.T) string {
			return testenv.SharedFile(t, "models/backbone/mnasnet0_75_dfdc.pth")
		}},
	}
	eng := newEngine(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pth := tc.weights(t)
			bb, hd := export(t, "--weights", pth, "--seed", strconv.Itoa(seed))
			c, err := LoadClassifier(eng, bb, hd, ClassifierOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			batches := []int{1, 8}
			dir := t.TempDir()
			in := randomBatch(slices.Max(batches), c.InputSize(), seed)
			writeF32(t, filepath.Join(dir, "input.f32"), in)
			runTool(t, "reference_infer.py", "run", "--weights", pth, "--seed", strconv.Itoa(seed),
				"--size", strconv.Itoa(c.InputSize()), "--batches", "1,8",
				"--input", filepath.Join(dir, "input.f32"), "--out", dir)
			for _, n := range batches {
				t.Run(fmt.Sprintf("batch=%d", n), func(t *testing.T) {
					F := c.FeatureSize()
					torch := func(name string, per int) []float32 {
						return readF32(t, filepath.Join(dir, fmt.Sprintf("%s-%d.f32", name, n)), n*per)
					}
					wantFeat, wantLogits, wantP := torch("features", F), torch("logits", 2), torch("p_fake", 1)

					feat := make([]float32, n*F)
					if err := c.b.Features(in, n, feat); err != nil {
						t.Fatal(err)
					}
					logits := make([]float32, n*2)
					if err := c.head.Load().Logits(wantFeat, n, logits); err != nil {
						t.Fatal(err)
					}
					p := make([]float32, n)
					if _, err := c.Classify(in, n, p); err != nil {
						t.Fatal(err)
					}
					for _, cmp := range []struct {
						what      string
						got, want []float32
						tol       float64
					}{
						{"features", feat, wantFeat, 1e-4 * (1 + maxAbs(wantFeat))},
						{"logits", logits, wantLogits, 1e-4},
						{"p_fake", p, wantP, 1e-4},
					} {
						d, at := maxAbsDiff(cmp.got, cmp.want)
						t.Logf("%s: max |go - torch| = %.2g", cmp.what, d)
						if !(d <= cmp.tol) {
							t.Errorf("%s[%d]: go %v, torch %v (|diff| %g > %g)", cmp.what, at, cmp.got[at], cmp.want[at], d, cmp.tol)
						}
					}
					// Equal p(fake) proves little if every face gets the same one.
					if n > 1 && spread(wantP) < 1e-3 {
						t.Errorf("torch p_fake %v barely depends on the input: the comparison is too weak", wantP)
					}
				})
			}
		})
	}
}

func maxAbs(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}

func spread(x []float32) float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range x {
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
	}
	return hi - lo
}
