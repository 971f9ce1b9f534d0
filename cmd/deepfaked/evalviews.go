package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/progress"
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
	bar := progress.New(stderr, "views")
	res, m, err := stability.Evaluate(ctx, cfg, data, vs, confidentMargin, newLogger(slog.LevelWarn),
		func(p stability.Progress) { bar.Update(p.Done, p.Total, -1, "") })
	bar.Done()
	if err != nil {
		return err
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(stderr, "eval: skipped %s: %s\n", s.Path, s.Reason)
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	return res.WriteTable(stdout, m, data, confidentMargin)
}
