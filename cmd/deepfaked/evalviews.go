package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train/stability"
)

// confidentMargin is how far from the threshold a verdict counts as
// confident in eval --views' figures (the issue that asked for them used 0.3).
const confidentMargin = 0.3

// classifierScorer is the daemon's classifier as a stability.Scorer.
type classifierScorer struct {
	c          *infer.Classifier
	configured spec.Threshold
}

func (s classifierScorer) Score(input []float32, n int, pFake []float32) (float64, error) {
	info, err := s.c.Classify(input, n, pFake)
	return spec.DecisionThreshold(s.configured, info.Threshold), err
}

// evalViews scores a folder of crops as they are and under the named views
// (or all) with the configured backbone, head and model.tta.
func evalViews(ctx context.Context, cfgPath, data, views string, asJSON bool, stdout, stderr io.Writer) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	var vs []stability.View
	if views == "all" {
		vs = stability.Views()
	} else if vs, err = stability.ByName(strings.Split(views, ",")); err != nil {
		return fmt.Errorf("--views: %w", err)
	}
	folder, err := dataset.Load(data)
	if err != nil {
		return err
	}
	eng, err := setup.Engine(cfg, newLogger(slog.LevelWarn))
	if err != nil {
		return err
	}
	defer eng.Close()
	c, err := setup.Classifier(cfg, eng)
	if err != nil {
		return err
	}
	defer c.Close()
	pre, err := preprocess.New(setup.PreprocessParams(cfg, c.Meta()))
	if err != nil {
		return err
	}
	defer pre.Close()
	// A batch of crops runs all its views in one model run; with
	// faces.max_faces set (TensorRT's largest batch) the run must fit it.
	batch := 8
	if mb := setup.EngineOptions(cfg, nil).MaxBatch; mb > 0 {
		batch = max(1, mb/len(vs)/c.Views())
	}
	bar := newProgressBar(stderr, "views")
	res, err := stability.Run(ctx, folder, classifierScorer{c, setup.Threshold(cfg)}, pre,
		stability.Options{Views: vs, Confident: confidentMargin, Batch: batch},
		func(p stability.Progress) { bar.update(p.Done, p.Total, -1, "") })
	bar.done()
	if err != nil {
		return err
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(stderr, "eval: skipped %s: %s\n", s.Path, s.Reason)
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "backbone %s, head %s, tta %s on %s (%d images) at threshold %.3f\n",
		c.BackboneID(), c.HeadID(), c.TTA(), data, res.N, res.Threshold)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "view\tROC-AUC\taccuracy\tF1\tchanged\tchanged, confident\tmedian |dp|\t90th pct |dp|\t\n")
	for _, v := range res.Views {
		m := v.Metrics
		if v.Name == stability.None {
			fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.4f\t-\t-\t-\t-\t\n", v.Name, fmtAUC(m.AUC), m.Accuracy, m.F1)
			continue
		}
		conf := "n/a"
		if v.ChangedConfident != nil {
			conf = fmt.Sprintf("%.1f %%", 100**v.ChangedConfident)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.4f\t%.1f %%\t%s\t%.3f\t%.3f\t\n", v.Name, fmtAUC(m.AUC), m.Accuracy, m.F1,
			100*v.Changed, conf, v.MedianDelta, v.P90Delta)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "changed: share of verdicts the view changes; confident: among the %d faces scored at least %.1f from the threshold as they are\n",
		res.Confident, confidentMargin)
	return nil
}
