package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/deepfaked/deepfaked/infer/spec"
)

// Progress is reported after every training step and once more at the end of
// each epoch (EpochDone, with ValLoss), so a CLI can draw a progress bar.
type Progress struct {
	Fold, Folds   int     // 1-based fold of a cross-validation; 0 outside one
	Epoch, Epochs int     // 1-based epoch, maximum epochs
	Step, Steps   int     // 1-based step within the epoch, steps per epoch
	Loss          float64 // mean training loss of the epoch so far
	ValLoss       float64 // validation loss, only when EpochDone (NaN without validation data)
	EpochDone     bool
	ETA           time.Duration // remaining time of this fit if it runs all epochs
}

// ProgressFunc receives Progress; nil means no reporting.
type ProgressFunc func(Progress)

// EpochStats is one epoch's losses.
type EpochStats struct {
	Epoch     int     `json:"epoch"`
	TrainLoss float64 `json:"train_loss"`
	ValLoss   float64 `json:"val_loss"`
}

// FitResult is a trained head and what validation said about it.
type FitResult struct {
	Head         *Head // the epoch with the lowest validation loss (the last epoch without validation)
	BestEpoch    int
	History      []EpochStats
	ClassWeights [NumClasses]float64
	// Validation predictions of Head (fake probabilities), the threshold chosen
	// on them (Youden's J; 0.5 without validation) and the metrics there.
	ValScores []float64
	ValLabels []int
	Threshold float64
	Val       Metrics
}

// Fit trains a fresh head on ds's trainIdx samples. With valIdx it stops early
// after cfg.Patience epochs without a lower validation loss (class-weighted
// cross-entropy without the L1 term, which measures fit rather than weight
// size) and keeps the best epoch's weights. A trailing batch of one sample is
// skipped: BatchNorm cannot normalise a single sample (PyTorch refuses it too).
func Fit(ctx context.Context, ds Dataset, trainIdx, valIdx []int, cfg Config, progress ProgressFunc) (*FitResult, error) {
	return fit(ctx, ds, trainIdx, valIdx, cfg, 0, 0, progress)
}

func fit(ctx context.Context, ds Dataset, trainIdx, valIdx []int, cfg Config, fold, folds int, progress ProgressFunc) (*FitResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := ds.Dim()
	if d < 1 {
		return nil, fmt.Errorf("fit: dataset has feature dimension %d", d)
	}
	if len(trainIdx) < 2 {
		return nil, fmt.Errorf("fit: %d training samples, need at least 2", len(trainIdx))
	}
	cw, err := classWeights(ds, trainIdx, cfg.ClassWeights)
	if err != nil {
		return nil, err
	}
	h := NewHead(d, cfg.Seed)
	opt := newOptimizer(h, cfg, cw, cfg.BatchSize)
	res := &FitResult{ClassWeights: cw, Threshold: 0.5, Head: h}
	x := make([]float32, cfg.BatchSize*d)
	y := make([]int, cfg.BatchSize)
	order := slices.Clone(trainIdx)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x73687566666c65))
	steps := len(order) / cfg.BatchSize
	if r := len(order) % cfg.BatchSize; r >= 2 {
		steps++
	}
	var (
		start     = time.Now()
		done      int
		bestLoss  = math.Inf(1)
		bad       int
		valLabels []int
	)
	for _, i := range valIdx {
		valLabels = append(valLabels, ds.Label(i))
	}
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var lossSum float64
		for s := range steps {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			batch := order[s*cfg.BatchSize : min((s+1)*cfg.BatchSize, len(order))]
			for b, i := range batch {
				if err := ds.Features(i, x[b*d:(b+1)*d]); err != nil {
					return nil, fmt.Errorf("fit: %w", err)
				}
				y[b] = ds.Label(i)
			}
			lossSum += opt.step(x[:len(batch)*d], y[:len(batch)])
			done++
			if progress != nil {
				left := cfg.Epochs*steps - done
				progress(Progress{Fold: fold, Folds: folds, Epoch: epoch, Epochs: cfg.Epochs, Step: s + 1, Steps: steps,
					Loss: lossSum / float64(s+1), ValLoss: math.NaN(),
					ETA: time.Duration(float64(time.Since(start)) / float64(done) * float64(left))})
			}
		}
		st := EpochStats{Epoch: epoch, TrainLoss: lossSum / float64(steps), ValLoss: math.NaN()}
		if len(valIdx) > 0 {
			logits, err := h.logitsOf(ctx, ds, valIdx)
			if err != nil {
				return nil, err
			}
			st.ValLoss = crossEntropy(logits, valLabels, cw, nil)
		}
		res.History = append(res.History, st)
		if progress != nil {
			progress(Progress{Fold: fold, Folds: folds, Epoch: epoch, Epochs: cfg.Epochs, Step: steps, Steps: steps,
				Loss: st.TrainLoss, ValLoss: st.ValLoss, EpochDone: true,
				ETA: time.Duration(float64(time.Since(start)) / float64(done) * float64((cfg.Epochs-epoch)*steps))})
		}
		if len(valIdx) == 0 {
			res.BestEpoch = epoch
			continue
		}
		if st.ValLoss < bestLoss {
			bestLoss, bad = st.ValLoss, 0
			res.Head, res.BestEpoch = h.Clone(), epoch
		} else if bad++; cfg.Patience > 0 && bad >= cfg.Patience {
			break
		}
	}
	if len(valIdx) > 0 {
		scores, err := res.Head.Scores(ctx, ds, valIdx)
		if err != nil {
			return nil, err
		}
		res.ValScores, res.ValLabels = scores, valLabels
		res.Threshold = ChooseThreshold(valLabels, scores)
		if res.Val, err = Evaluate(valLabels, scores, res.Threshold); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// classWeights are n/(2·n_c) over the training samples when balanced, else 1.
func classWeights(ds Dataset, idx []int, balanced bool) ([NumClasses]float64, error) {
	var n [NumClasses]int
	for _, i := range idx {
		l := ds.Label(i)
		if l != Real && l != Fake {
			return [NumClasses]float64{}, fmt.Errorf("fit: sample %d has label %d (want 0 or 1)", i, l)
		}
		n[l]++
	}
	if n[Real] == 0 || n[Fake] == 0 {
		return [NumClasses]float64{}, fmt.Errorf("fit: training samples need both classes, have %d real and %d fake", n[Real], n[Fake])
	}
	if !balanced {
		return [NumClasses]float64{1, 1}, nil
	}
	tot := float64(n[Real] + n[Fake])
	return [NumClasses]float64{tot / (2 * float64(n[Real])), tot / (2 * float64(n[Fake]))}, nil
}

// evalBatch bounds the memory of eval-mode passes.
const evalBatch = 256

// logitsOf runs the head in eval mode over ds's idx samples (nil: all).
func (h *Head) logitsOf(ctx context.Context, ds Dataset, idx []int) ([]float32, error) {
	if ds.Dim() != h.D {
		return nil, fmt.Errorf("head has %d inputs but the dataset has %d features", h.D, ds.Dim())
	}
	n := len(idx)
	if idx == nil {
		n = ds.Len()
	}
	w, b := h.Fold()
	out := make([]float32, n*NumClasses)
	x := make([]float32, min(n, evalBatch)*h.D)
	for s := 0; s < n; s += evalBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := min(evalBatch, n-s)
		for k := range m {
			i := s + k
			if idx != nil {
				i = idx[s+k]
			}
			if err := ds.Features(i, x[k*h.D:(k+1)*h.D]); err != nil {
				return nil, err
			}
		}
		affine(w, b, x[:m*h.D], m, h.D, out[s*NumClasses:(s+m)*NumClasses])
	}
	return out, nil
}

// Scores are the eval-mode fake probabilities of ds's idx samples (nil: all).
func (h *Head) Scores(ctx context.Context, ds Dataset, idx []int) ([]float64, error) {
	logits, err := h.logitsOf(ctx, ds, idx)
	if err != nil {
		return nil, err
	}
	s := make([]float64, len(logits)/NumClasses)
	for i := range s {
		s[i] = spec.PFake(logits[2*i], logits[2*i+1])
	}
	return s, nil
}

// FoldResult is one cross-validation fold.
type FoldResult struct {
	Fold      int          `json:"fold"`
	Train     int          `json:"train"`
	Val       int          `json:"val"`
	BestEpoch int          `json:"best_epoch"`
	History   []EpochStats `json:"history"`
	Metrics   Metrics      `json:"metrics"` // on its validation fold at its own threshold (optimistic: that fold also chose it)
}

// CVResult summarises a stratified grouped k-fold cross-validation.
type CVResult struct {
	Folds []FoldResult `json:"folds"`
	// Scores are the out-of-fold fake probabilities, one per sample: each from
	// the fold model that never trained on it.
	Scores []float64 `json:"-"`
	// Threshold is chosen (Youden's J) on the pooled out-of-fold scores, and
	// OutOfFold are the metrics there.
	Threshold float64 `json:"threshold"`
	OutOfFold Metrics `json:"out_of_fold"`
	// Epochs is the median best epoch: how long to train the final head on
	// all the data, where no validation set is left to stop it.
	Epochs int `json:"epochs"`
	// Heads are the folds' best heads, for Average.
	Heads []*Head `json:"-"`
}

// CrossValidate runs cfg.Folds folds of StratifiedGroupKFold over ds.
func CrossValidate(ctx context.Context, ds Dataset, cfg Config, progress ProgressFunc) (*CVResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	labels := Labels(ds)
	splits, err := StratifiedGroupKFold(labels, Groups(ds), cfg.Folds, cfg.Seed)
	if err != nil {
		return nil, err
	}
	cv := &CVResult{Scores: make([]float64, ds.Len())}
	var best []int
	for f, sp := range splits {
		r, err := fit(ctx, ds, sp[0], sp[1], cfg, f+1, len(splits), progress)
		if err != nil {
			return nil, fmt.Errorf("fold %d of %d: %w", f+1, len(splits), err)
		}
		for k, i := range sp[1] {
			cv.Scores[i] = r.ValScores[k]
		}
		cv.Folds = append(cv.Folds, FoldResult{Fold: f + 1, Train: len(sp[0]), Val: len(sp[1]),
			BestEpoch: r.BestEpoch, History: r.History, Metrics: r.Val})
		best = append(best, r.BestEpoch)
		cv.Heads = append(cv.Heads, r.Head)
	}
	slices.Sort(best)
	cv.Epochs = best[len(best)/2]
	cv.Threshold = ChooseThreshold(labels, cv.Scores)
	if cv.OutOfFold, err = Evaluate(labels, cv.Scores, cv.Threshold); err != nil {
		return nil, err
	}
	return cv, nil
}

// Average is one head whose logits are the mean of the heads' logits: with
// BatchNorm folded each head is a linear map, and so is their mean. The daemon
// runs it at the cost of one head, and it varies less from seed to seed than
// any single head trained on a few hundred images.
func Average(heads ...*Head) (*Head, error) {
	w := make([]float64, len(heads))
	for i := range w {
		w[i] = 1 / float64(len(heads))
	}
	return Mix(heads, w)
}

// Mix is one head whose logits are the weighted sum of the heads' logits,
// as one affine map (BatchNorm folded). Mixing a head trained on new data
// with the installed one, weights 1−α and α, is how a head learns a camera
// without forgetting (interpolating the weights of the old and the fine-tuned
// model, Wortsman et al., "Robust fine-tuning of zero-shot models", 2022).
func Mix(heads []*Head, weights []float64) (*Head, error) {
	if len(heads) == 0 || len(heads) != len(weights) {
		return nil, fmt.Errorf("mix: %d heads and %d weights", len(heads), len(weights))
	}
	d := heads[0].D
	w := make([]float64, NumClasses*d)
	var b [NumClasses]float64
	for i, h := range heads {
		if h.D != d {
			return nil, fmt.Errorf("mix: heads take %d and %d features", d, h.D)
		}
		hw, hb := h.Fold()
		for j, v := range hw {
			w[j] += weights[i] * float64(v)
		}
		for c, v := range hb {
			b[c] += weights[i] * float64(v)
		}
	}
	fw := make([]float32, len(w))
	for i, v := range w {
		fw[i] = float32(v)
	}
	return Affine(d, fw, []float32{float32(b[0]), float32(b[1])})
}

// Affine is the head whose logits are w·x + b (w row-major [2][d]), behind an
// identity BatchNorm, so that Fold gives w and b back.
func Affine(d int, w, b []float32) (*Head, error) {
	if len(w) != NumClasses*d || len(b) != NumClasses {
		return nil, fmt.Errorf("affine head: want %d weights and %d biases, got %d and %d", NumClasses*d, NumClasses, len(w), len(b))
	}
	out := NewHead(d, 0)
	for j := range d {
		// Fold scales by γ/√(var+ε): 1 here, so the weights stay as they are.
		out.Gamma[j], out.Beta[j], out.RunningMean[j], out.RunningVar[j] = 1, 0, 0, 1-bnEps
	}
	copy(out.W, w)
	copy(out.B, b)
	return out, nil
}
