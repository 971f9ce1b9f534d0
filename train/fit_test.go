package train

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

func indices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// TestFitFindsMinorityClass: on 1:4 imbalanced data, balanced class weights
// plus the validation threshold must catch most of the minority class.
func TestFitFindsMinorityClass(t *testing.T) {
	ds := synth(800, 256, 0.2, 4, 1.0, 21)
	splits, err := StratifiedGroupKFold(ds.Labels, ds.Groups, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := recipe()
	cfg.Epochs = 8
	var calls, epochEnds int
	res, err := Fit(context.Background(), ds, splits[0][0], splits[0][1], cfg, func(p Progress) {
		calls++
		if p.EpochDone {
			epochEnds++
			if math.IsNaN(p.ValLoss) {
				t.Errorf("epoch %d ended without a validation loss", p.Epoch)
			}
		}
		if p.Step < 1 || p.Step > p.Steps || p.Epoch < 1 || p.Epoch > p.Epochs || p.ETA < 0 {
			t.Errorf("bad progress %+v", p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ClassWeights[Fake] <= res.ClassWeights[Real] {
		t.Errorf("class weights %v do not favour the minority (fake) class", res.ClassWeights)
	}
	if epochEnds != len(res.History) || calls <= epochEnds {
		t.Errorf("%d progress calls, %d epoch ends for %d epochs", calls, epochEnds, len(res.History))
	}
	if res.Val.AUC < 0.9 || res.Val.Recall < 0.75 {
		t.Errorf("validation AUC %.3f recall %.3f: want > 0.9 and > 0.75 (metrics %+v)", res.Val.AUC, res.Val.Recall, res.Val)
	}
	// The returned head is the best epoch's: its validation loss is the history's minimum.
	best := slices.MinFunc(res.History, func(a, b EpochStats) int { return cmpF(a.ValLoss, b.ValLoss) })
	if best.Epoch != res.BestEpoch {
		t.Errorf("best epoch %d, but the lowest validation loss was in epoch %d", res.BestEpoch, best.Epoch)
	}
	logits, err := res.Head.logitsOf(context.Background(), ds, splits[0][1])
	if err != nil {
		t.Fatal(err)
	}
	if got := crossEntropy(logits, res.ValLabels, res.ClassWeights, nil); math.Abs(got-best.ValLoss) > 1e-9 {
		t.Errorf("returned head's validation loss %.6f, best epoch's %.6f", got, best.ValLoss)
	}
	t.Logf("epochs %d (best %d), validation %+v", len(res.History), res.BestEpoch, res.Val)
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestFitStopsEarly: pure noise with a high learning rate overfits from the
// start, so validation loss rises and patience 1 stops well before 30 epochs.
func TestFitStopsEarly(t *testing.T) {
	ds := synth(200, 512, 0.5, 1, 0, 8)
	cfg := recipe()
	cfg.Epochs, cfg.Patience, cfg.LR = 30, 1, 1e-2
	res, err := Fit(context.Background(), ds, indices(150), indices(200)[150:], cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.History) >= cfg.Epochs || len(res.History) != res.BestEpoch+cfg.Patience {
		t.Errorf("ran %d epochs with best epoch %d and patience %d", len(res.History), res.BestEpoch, cfg.Patience)
	}
}

func TestFitRejects(t *testing.T) {
	ds := synth(40, 8, 0.5, 1, 1, 1)
	oneClass := slices.DeleteFunc(indices(40), func(i int) bool { return ds.Labels[i] == Fake })
	bad := recipe()
	bad.BatchSize = 1
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name  string
		ctx   context.Context
		train []int
		cfg   Config
	}{
		{"one class", context.Background(), oneClass, recipe()},
		{"batch of one", context.Background(), indices(40), bad},
		{"one sample", context.Background(), []int{0}, recipe()},
		{"cancelled", ctx, indices(40), recipe()},
	}
	for _, tc := range cases {
		if _, err := Fit(tc.ctx, ds, tc.train, nil, tc.cfg, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		} else if tc.name == "cancelled" && !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v", err)
		}
	}
}

// TestCrossValidate: every sample gets an out-of-fold score, every fold trains.
func TestCrossValidate(t *testing.T) {
	ds := synth(300, 64, 0.4, 3, 1.5, 33)
	cfg := recipe()
	cfg.Folds, cfg.Epochs = 3, 10
	folds := map[int]bool{}
	cv, err := CrossValidate(context.Background(), ds, cfg, func(p Progress) { folds[p.Fold] = p.Folds == 3 })
	if err != nil {
		t.Fatal(err)
	}
	if len(cv.Folds) != 3 || len(folds) != 3 || !folds[1] || !folds[2] || !folds[3] {
		t.Fatalf("folds %d, progress from %v", len(cv.Folds), folds)
	}
	total := 0
	for _, f := range cv.Folds {
		total += f.Val
		if f.Train+f.Val != ds.Len() {
			t.Errorf("fold %d: %d + %d samples", f.Fold, f.Train, f.Val)
		}
	}
	if total != ds.Len() || cv.OutOfFold.N != ds.Len() || slices.Contains(cv.Scores, 0) {
		t.Errorf("out-of-fold covers %d / %d samples", total, ds.Len())
	}
	if cv.OutOfFold.AUC < 0.75 || cv.Epochs < 1 || cv.Epochs > cfg.Epochs {
		t.Errorf("out-of-fold %+v, epochs %d", cv.OutOfFold, cv.Epochs)
	}
}

// TestMix: a mixed (or averaged) head's logits are the weighted sum of the
// heads' logits.
func TestMix(t *testing.T) {
	const d, n = 48, 5
	heads := []*Head{NewHead(d, 1), NewHead(d, 2), NewHead(d, 3)}
	for i, h := range heads { // non-trivial BatchNorm statistics, so folding matters
		for j := range d {
			h.Gamma[j], h.Beta[j] = 0.5+float32(i)*0.3, float32(j%5)*0.1
			h.RunningMean[j], h.RunningVar[j] = float32(j%7)*0.2, 0.5+float32(j%3)
		}
	}
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(i%11)*0.3 - 1
	}
	for _, tc := range []struct {
		name    string
		weights []float64
		mix     func() (*Head, error)
	}{
		{"average", []float64{1. / 3, 1. / 3, 1. / 3}, func() (*Head, error) { return Average(heads...) }},
		{"mix", []float64{0.7, 0, 0.3}, func() (*Head, error) { return Mix(heads, []float64{0.7, 0, 0.3}) }},
		{"one head", []float64{0, 1, 0}, func() (*Head, error) { return Mix(heads, []float64{0, 1, 0}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := make([]float64, n*NumClasses)
			got := make([]float32, n*NumClasses)
			for k, h := range heads {
				if err := h.Logits(x, n, got); err != nil {
					t.Fatal(err)
				}
				for i, v := range got {
					want[i] += tc.weights[k] * float64(v)
				}
			}
			mixed, err := tc.mix()
			if err != nil {
				t.Fatal(err)
			}
			if err := mixed.Logits(x, n, got); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Abs(float64(got[i])-want[i]) > 1e-4 {
					t.Fatalf("logit %d: %v, weighted sum of the heads %v", i, got[i], want[i])
				}
			}
		})
	}
	if _, err := Average(NewHead(4, 1), NewHead(5, 1)); err == nil {
		t.Error("heads of different sizes were averaged")
	}
	if _, err := Mix(heads, []float64{1}); err == nil {
		t.Error("three heads were mixed with one weight")
	}
}
