package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/train/evalvideo"
)

// videoEvalOptions are the flags of `eval --videos`.
type videoEvalOptions struct {
	config, dir, predictions, roc string
	fps                           float64
	jobs                          int
	json                          bool
}

// evalVideos runs `deepfaked eval --videos`: evalvideo.Run with a progress
// line, then the files asked for and the report.
func evalVideos(ctx context.Context, o videoEvalOptions, stdout, stderr io.Writer) error {
	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	bar := newProgressBar(stderr, "videos")
	faces := 0
	rep, err := evalvideo.Run(ctx, cfg, evalvideo.Options{Dir: o.dir, FPS: o.fps, Jobs: o.jobs, Log: newLogger(slog.LevelWarn),
		Loaded: func(f *dataset.Folder) {
			real, fake := f.Counts()
			fmt.Fprintf(stderr, "%s: %d real, %d fake videos (%s)\n", o.dir, real, fake, f.LabelsFrom())
		},
		Progress: func(done, total, n int) {
			faces = n
			bar.update(done, total, -1, fmt.Sprintf("%d faces", n))
		},
		Warn: func(format string, args ...any) {
			if bar.tty && bar.drawn {
				fmt.Fprintln(stderr)
			}
			fmt.Fprintf(stderr, "warning: "+format+"\n", args...)
		},
	})
	bar.done()
	if rep != nil && len(rep.Unreadable) > 0 {
		defer func() {
			fmt.Fprintf(stderr, "warning: %d of %d video(s) could not be read and are left out:\n", len(rep.Unreadable), rep.Videos)
			for _, f := range rep.Unreadable {
				fmt.Fprintf(stderr, "  %s: %s\n", f.Path, f.Error)
			}
		}()
	}
	if err != nil {
		return err
	}
	// The bar draws only when a video ends: the last faces may not show on it.
	fmt.Fprintf(stderr, "videos: %d read, %d faces, in %.1fs\n", len(rep.Results), faces, rep.Seconds)
	if o.predictions != "" {
		if err := evalvideo.WritePredictions(o.predictions, rep); err != nil {
			return err
		}
	}
	if o.roc != "" {
		if err := evalvideo.WriteRulesROC(o.roc, rep); err != nil {
			return err
		}
	}
	if o.json {
		return json.NewEncoder(stdout).Encode(rep)
	}
	printVideoReport(stdout, o.dir, rep)
	return nil
}

// printVideoReport prints one row per score: the metrics at the decision
// threshold and the confusion counts.
func printVideoReport(w io.Writer, dir string, r *evalvideo.Report) {
	fmt.Fprintf(w, "%s: %d video(s), %d scored, %d with no face, %d unreadable (both left out of the metrics)\n",
		dir, r.Videos, r.Scored, len(r.NoFace), len(r.Unreadable))
	fmt.Fprintf(w, "fps %g, threshold %.3f; a track rule scores a video as its most fake track of at least %d frame(s); * tracks.rule (the daemon's)\n",
		r.FPS, r.Threshold, r.MinFrames)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "score\tn\taccuracy\tprecision\trecall\tF1\tROC-AUC\ttn\tfp\tfn\ttp\t")
	for _, name := range evalvideo.ScoreNames() {
		m := r.Metrics[name]
		if name == r.Rule {
			name += " *"
		}
		c := m.Confusion
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%s\t%d\t%d\t%d\t%d\t\n", name, m.N, m.Accuracy, m.Precision, m.Recall,
			m.F1, fmtAUC(m.AUC), c[0][0], c[0][1], c[1][0], c[1][1])
	}
	tw.Flush()
	if len(r.NoFace) > 0 {
		fmt.Fprintf(w, "no face found in: %s\n", listSome(r.NoFace))
	}
}

// errNoVideoFlags names the image-only flags that --videos refuses.
func errNoVideoFlags(names []string) error {
	return errors.New("--videos evaluates videos with the daemon's pipeline; " + strings.Join(names, ", ") + " only apply to --data")
}
