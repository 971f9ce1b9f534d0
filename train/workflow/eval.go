package workflow

import (
	"context"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/gate"
)

// Evaluation is a head's scores on a dataset.
type Evaluation struct {
	Metrics train.Metrics
	Scores  []float64 // fake probability of every sample, in order
}

// Eval scores head on every sample of data and measures it at the threshold
// spec.DecisionThreshold picks: configured (model.threshold) if set, else the
// head's own, else 0.5.
func Eval(ctx context.Context, data train.Dataset, head gate.Head, configured spec.Threshold) (*Evaluation, error) {
	scores, err := gate.Scores(ctx, head, data)
	if err != nil {
		return nil, err
	}
	m, err := train.Evaluate(train.Labels(data), scores, spec.DecisionThreshold(configured, head.Threshold()))
	if err != nil {
		return nil, err
	}
	return &Evaluation{Metrics: m, Scores: scores}, nil
}
