package train

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"testing"
)

// recipe is the notebook's recipe with early stopping, as daemon/config's
// train defaults write it: the configuration the PyTorch comparisons use.
func recipe() Config {
	return Config{LR: 1e-3, L1: 1e-4, WeightDecay: 1e-2, Dropout: 0.5,
		BatchSize: 64, Epochs: 10, Patience: 3, Folds: 5, Seed: 1, ClassWeights: true}
}

// synth makes n samples of d features, a fraction fake of them fake, in
// groups of groupSize consecutive samples of one class. The first 16 features
// carry a class signal of the given strength; the rest are noise with
// per-feature offsets and scales, which BatchNorm has to remove.
func synth(n, d int, fake float64, groupSize int, signal float64, seed uint64) *MemDataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := &MemDataset{D: d, X: make([]float32, n*d)}
	off, scale := make([]float64, d), make([]float64, d)
	for j := range d {
		off[j], scale[j] = 3*rng.NormFloat64(), 0.2+3*rng.Float64()
	}
	label := 0
	for i := range n {
		if i%groupSize == 0 {
			label = 0
			if rng.Float64() < fake {
				label = 1
			}
		}
		m.Labels = append(m.Labels, label)
		m.Groups = append(m.Groups, fmt.Sprintf("id%04d", i/groupSize))
		for j := range d {
			v := rng.NormFloat64()
			if j < 16 && label == 1 {
				v += signal
			}
			m.X[i*d+j] = float32(off[j] + scale[j]*v)
		}
	}
	return m
}

// torchPython is Debian's python with torch; the tests fail without it, since
// it is part of the project's set-up.
func torchPython(t testing.TB) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch, onnx").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import torch and onnx (%v: %s): run `make deps`", py, err, out)
	}
	return py
}
