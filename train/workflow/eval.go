package workflow

import (
	"context"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/train"
)

// Head is an exported head as the daemon runs it (infer.Head).
type Head interface {
	// Logits runs n samples' features and writes n×2 logits [real, fake].
	Logits(features []float32, n int, dst []float32) error
	// Threshold is the threshold calibrated and stored with the head, if any.
	Threshold() spec.Threshold
	Close() error
}

// Evaluation is a head's scores on a dataset.
type Evaluation struct {
	Metrics train.Metrics
	Scores  []float64 // fake probability of every sample, in order
}

// Eval scores head on every sample of data and measures it at the threshold
// spec.DecisionThreshold picks: configured (model.threshold) if set, else the
// head's own, else 0.5.
func Eval(ctx context.Context, data train.Dataset, head Head, configured spec.Threshold) (*Evaluation, error) {
	scores, err := Scores(ctx, head, data)
	if err != nil {
		return nil, err
	}
	m, err := train.Evaluate(labelsOf(data), scores, spec.DecisionThreshold(configured, head.Threshold()))
	if err != nil {
		return nil, err
	}
	return &Evaluation{Metrics: m, Scores: scores}, nil
}

// Scores are head's fake probabilities for every sample of ds, in batches.
func Scores(ctx context.Context, head Head, ds train.Dataset) ([]float64, error) {
	const batch = 64
	d := ds.Dim()
	x := make([]float32, batch*d)
	logits := make([]float32, 2*batch)
	scores := make([]float64, ds.Len())
	for s := 0; s < ds.Len(); s += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(batch, ds.Len()-s)
		for k := range n {
			if err := ds.Features(s+k, x[k*d:(k+1)*d]); err != nil {
				return nil, err
			}
		}
		if err := head.Logits(x[:n*d], n, logits[:2*n]); err != nil {
			return nil, err
		}
		for k := range n {
			scores[s+k] = spec.PFake(logits[2*k], logits[2*k+1])
		}
	}
	return scores, nil
}
