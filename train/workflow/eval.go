package workflow

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strconv"

	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/features"
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

// WritePredictions writes path,label,p_fake for every sample, in order, as
// one CSV file replaced whole.
func WritePredictions(path string, samples []features.Sample, scores []float64) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"path", "label", "p_fake"})
	for i, s := range samples {
		label := dataset.Real
		if s.Label == train.Fake {
			label = dataset.Fake
		}
		_ = w.Write([]string{s.Path, label, strconv.FormatFloat(scores[i], 'g', 6, 64)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("predictions %s: %w", path, err)
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("predictions: %w", err)
	}
	return nil
}
