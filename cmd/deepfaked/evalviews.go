package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/train/stability"
)

// confidentMargin is how far from the threshold a verdict counts as
// confident in eval --views' figures (the issue that asked for them used 0.3).
const confidentMargin = 0.3

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
	bar := newProgressBar(stderr, "views")
	res, m, err := stability.Evaluate(ctx, cfg, data, vs, confidentMargin, newLogger(slog.LevelWarn),
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
		m.Backbone, m.Head, m.TTA, data, res.N, res.Threshold)
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
