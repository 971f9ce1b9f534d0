package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/progress"
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
	bar := progress.New(stderr, "videos")
	faces := 0
	rep, err := evalvideo.Run(ctx, cfg, evalvideo.Options{Dir: o.dir, FPS: o.fps, Jobs: o.jobs, Log: newLogger(slog.LevelWarn),
		Loaded: func(f *dataset.Folder) {
			real, fake := f.Counts()
			fmt.Fprintf(stderr, "%s: %d real, %d fake videos (%s)\n", o.dir, real, fake, f.LabelsFrom())
		},
		Progress: func(done, total, n int) {
			faces = n
			bar.Update(done, total, -1, fmt.Sprintf("%d faces", n))
		},
		Warn: func(format string, args ...any) {
			bar.Interrupt()
			fmt.Fprintf(stderr, "warning: "+format+"\n", args...)
		},
	})
	bar.Done()
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
	if err := rep.WriteTable(stdout, o.dir); err != nil {
		return err
	}
	if len(rep.NoFace) > 0 {
		fmt.Fprintf(stdout, "no face found in: %s\n", dataset.Some(rep.NoFace))
	}
	return nil
}

// errNoVideoFlags names the image-only flags that --videos refuses.
func errNoVideoFlags(names []string) error {
	return errors.New("--videos evaluates videos with the daemon's pipeline; " + strings.Join(names, ", ") + " only apply to --data")
}
