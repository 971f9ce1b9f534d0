package train

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

func writeF32(t *testing.T, path string, parts ...[]float32) {
	t.Helper()
	var b []byte
	for _, p := range parts {
		for _, v := range p {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMatchesPyTorch trains the same head from the same initial weights on the
// same batches in Go and in PyTorch (tools/reference_head.py), dropout off,
// and compares every step's loss and the final eval-mode logits.
func TestMatchesPyTorch(t *testing.T) {
	testenv.Long(t)
	py := torchPython(t)
	script := filepath.Join(testenv.RepoRoot(t), "tools", "reference_head.py")
	cases := []struct {
		name                string
		n, d, batch, epochs int
		balanced            bool
		lr, l1, wd          float64
	}{
		{"reference recipe, balanced weights", 150, 640, 32, 4, true, 1e-3, 1e-4, 1e-2},
		{"unweighted, no penalties, ragged last batch", 101, 300, 16, 3, false, 1e-3, 0, 0},
		{"large lr, strong L1", 96, 1280, 24, 5, true, 1e-2, 1e-3, 1e-2},
	}
	for k, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := synth(tc.n, tc.d, 0.3, 1, 1.0, uint64(10+k))
			cfg := recipe()
			cfg.LR, cfg.L1, cfg.WeightDecay, cfg.Dropout, cfg.ClassWeights = tc.lr, tc.l1, tc.wd, 0, tc.balanced
			all := make([]int, tc.n)
			for i := range all {
				all[i] = i
			}
			cw, err := classWeights(ds, all, tc.balanced)
			if err != nil {
				t.Fatal(err)
			}
			h := NewHead(tc.d, int64(k))
			// Non-default BatchNorm state so that γ, β and the running
			// statistics are exercised from the first step.
			rng := rand.New(rand.NewPCG(uint64(k), 2))
			for j := range tc.d {
				h.Gamma[j] = float32(0.5 + rng.Float64())
				h.Beta[j] = float32(rng.NormFloat64() * 0.1)
				h.RunningMean[j] = float32(rng.NormFloat64())
				h.RunningVar[j] = float32(0.5 + rng.Float64())
			}
			dir := t.TempDir()
			writeF32(t, filepath.Join(dir, "x.f32"), ds.X)
			writeF32(t, filepath.Join(dir, "init.f32"), h.Gamma, h.Beta, h.RunningMean, h.RunningVar, h.W, h.B)
			writeJSON(t, filepath.Join(dir, "labels.json"), ds.Labels)

			var batches [][]int
			for range tc.epochs {
				perm := rng.Perm(tc.n)
				for s := 0; s < tc.n; s += tc.batch {
					if b := perm[s:min(s+tc.batch, tc.n)]; len(b) >= 2 {
						batches = append(batches, b)
					}
				}
			}
			writeJSON(t, filepath.Join(dir, "config.json"), map[string]any{
				"d": tc.d, "n": tc.n, "lr": tc.lr, "l1": tc.l1, "weight_decay": tc.wd,
				"class_weights": cw, "batches": batches,
			})

			opt := newOptimizer(h, cfg, cw, tc.batch)
			x := make([]float32, tc.batch*tc.d)
			y := make([]int, tc.batch)
			var losses []float64
			for _, b := range batches {
				for r, i := range b {
					if err := ds.Features(i, x[r*tc.d:(r+1)*tc.d]); err != nil {
						t.Fatal(err)
					}
					y[r] = ds.Labels[i]
				}
				losses = append(losses, opt.step(x[:len(b)*tc.d], y[:len(b)]))
			}
			logits := make([]float32, tc.n*NumClasses)
			if err := h.Logits(ds.X, tc.n, logits); err != nil {
				t.Fatal(err)
			}

			if out, err := exec.Command(py, script, dir).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", script, err, out)
			}
			var ref struct {
				Losses []float64 `json:"losses"`
				Logits []float64 `json:"logits"`
			}
			b, err := os.ReadFile(filepath.Join(dir, "out.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &ref); err != nil {
				t.Fatal(err)
			}
			if len(ref.Losses) != len(losses) || len(ref.Logits) != len(logits) {
				t.Fatalf("pytorch returned %d losses and %d logits, want %d and %d", len(ref.Losses), len(ref.Logits), len(losses), len(logits))
			}
			var worstL, worstZ float64
			for s, l := range losses {
				rel := math.Abs(l-ref.Losses[s]) / math.Abs(ref.Losses[s])
				worstL = max(worstL, rel)
				if rel > 1e-4 {
					t.Errorf("step %d: loss %.7g, pytorch %.7g (relative difference %.2g)", s+1, l, ref.Losses[s], rel)
				}
			}
			for i, z := range logits {
				diff := math.Abs(float64(z) - ref.Logits[i])
				worstZ = max(worstZ, diff)
				if diff > 1e-4 {
					t.Errorf("logit %d of sample %d: %.7g, pytorch %.7g", i%2, i/2, z, ref.Logits[i])
				}
			}
			if losses[len(losses)-1] >= losses[0] {
				t.Errorf("loss did not fall: %.4g → %.4g", losses[0], losses[len(losses)-1])
			}
			t.Logf("%d steps: worst loss rel. difference %.2g, worst logit difference %.2g; loss %.4f → %.4f",
				len(losses), worstL, worstZ, losses[0], losses[len(losses)-1])
		})
	}
}
