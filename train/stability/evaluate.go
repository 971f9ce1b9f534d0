package stability

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train"
)

// Models names what Evaluate ran: the backbone's and the head's ids and model.tta.
type Models struct{ Backbone, Head, TTA string }

// classifierScorer is the daemon's classifier as a Scorer.
type classifierScorer struct {
	c          *infer.Classifier
	configured spec.Threshold
}

func (s classifierScorer) Score(input []float32, n int, pFake []float32) (float64, error) {
	info, err := s.c.Classify(input, n, pFake)
	return spec.DecisionThreshold(s.configured, info.Threshold), err
}

// Evaluate runs the labelled folder data under views (the first must be
// None) through the configured backbone, head and model.tta, preprocessed
// as the daemon does (`deepfaked eval --views`).
func Evaluate(ctx context.Context, cfg *config.Config, data string, views []View, confident float64, log *slog.Logger,
	progress func(Progress)) (*Result, Models, error) {
	folder, err := dataset.Load(data)
	if err != nil {
		return nil, Models{}, err
	}
	eng, err := setup.Engine(cfg, log)
	if err != nil {
		return nil, Models{}, err
	}
	defer eng.Close()
	c, err := setup.Classifier(cfg, eng)
	if err != nil {
		return nil, Models{}, err
	}
	defer c.Close()
	m := Models{Backbone: c.BackboneID(), Head: c.HeadID(), TTA: c.TTA()}
	pre, err := preprocess.New(setup.PreprocessParams(cfg, c.Meta()))
	if err != nil {
		return nil, m, err
	}
	defer pre.Close()
	// A batch of crops runs all its views in one model run; with
	// faces.max_faces set (TensorRT's largest batch) the run must fit it.
	batch := 8
	if mb := setup.EngineOptions(cfg, nil).MaxBatch; mb > 0 {
		batch = max(1, mb/len(views)/c.Views())
	}
	r, err := Run(ctx, folder, classifierScorer{c, setup.Threshold(cfg)}, pre, Options{Views: views, Confident: confident, Batch: batch}, progress)
	if err != nil {
		return nil, m, fmt.Errorf("views of %s: %w", data, err)
	}
	return r, m, nil
}

// WriteTable prints the result as a table, one row per view; models and
// data name what ran on what, confident is Options.Confident.
func (r *Result) WriteTable(w io.Writer, models Models, data string, confident float64) error {
	fmt.Fprintf(w, "backbone %s, head %s, tta %s on %s (%d images) at threshold %.3f\n",
		models.Backbone, models.Head, models.TTA, data, r.N, r.Threshold)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "view\tROC-AUC\taccuracy\tF1\tchanged\tchanged, confident\tmedian |dp|\t90th pct |dp|\t\n")
	for _, v := range r.Views {
		m := v.Metrics
		if v.Name == None {
			fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.4f\t-\t-\t-\t-\t\n", v.Name, train.FormatAUC(m.AUC), m.Accuracy, m.F1)
			continue
		}
		conf := "n/a"
		if v.ChangedConfident != nil {
			conf = fmt.Sprintf("%.1f %%", 100**v.ChangedConfident)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.4f\t%.1f %%\t%s\t%.3f\t%.3f\t\n", v.Name, train.FormatAUC(m.AUC), m.Accuracy, m.F1,
			100*v.Changed, conf, v.MedianDelta, v.P90Delta)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "changed: share of verdicts the view changes; confident: among the %d faces scored at least %.1f from the threshold as they are\n",
		r.Confident, confident)
	return nil
}
