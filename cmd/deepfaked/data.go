package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/progress"
	"github.com/deepfaked/deepfaked/train/features"
	"github.com/deepfaked/deepfaked/train/featureset"
)

// dataFlags are the flags train and eval share.
type dataFlags struct {
	config, data, crop, cache, featuresOut string
	selfBlend                              features.SelfBlend // train's, from train.self_blend
}

func (f *dataFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (models, runtime, faces, train)")
	cmd.Flags().StringVar(&f.data, "data", "", "labelled folder: DIR/real/* and DIR/fake/*, or DIR/labels.csv (path,label,identity)")
	cmd.Flags().StringVar(&f.crop, "crop", dataset.CropNone, "none: each image is already a face crop (as the daemon saves them); face: crop the largest face found by faces.detector, as the daemon does with frames")
	cmd.Flags().StringVar(&f.cache, "cache", "", "feature cache folder (default <state_dir>/features)")
	cmd.Flags().StringVar(&f.featuresOut, "features-out", "", "also write the features as DIR/features.f32 + DIR/labels.csv (label,group) for other tools")
	_ = cmd.MarkFlagRequired("data")
}

// loadFeatures reads the data folder's features (featureset.Load), drawing
// progress and the folder's counts and warnings on stderr.
func loadFeatures(ctx context.Context, cfg *config.Config, f dataFlags, stderr io.Writer) (*featureset.Set, error) {
	if err := dataset.CheckCrop(f.crop); err != nil {
		return nil, fmt.Errorf("--crop: %w", err)
	}
	if f.cache == "" {
		f.cache = featureset.CacheDir(cfg)
	}
	bar := progress.New(stderr, "features")
	s, err := featureset.Load(ctx, cfg, featureset.Options{Data: f.data, Crop: f.crop, Cache: f.cache, FeaturesOut: f.featuresOut,
		SelfBlend: f.selfBlend, Log: newLogger(slog.LevelWarn),
		Loaded: func(folder *dataset.Folder) {
			real, fake := folder.Counts()
			fmt.Fprintf(stderr, "%s: %d real, %d fake images (%s)\n", f.data, real, fake, folder.LabelsFrom())
			if n := f.selfBlend.Per; n > 0 {
				fmt.Fprintf(stderr, "self-blend: %d fakes made from each real image, %d in all\n", n, n*real)
			}
		},
		Progress: func(p features.Progress) {
			bar.Update(p.Done, p.Total, -1, fmt.Sprintf("%d cached, %d extracted, %d skipped", p.Cached, p.Extracted, p.Skipped))
		}})
	bar.Done()
	if err != nil {
		return nil, err
	}
	src := s.Source
	fmt.Fprintf(stderr, "features: %d cached, %d extracted in %.1fs (cache %s)\n", src.Cached, src.Extracted, src.Seconds, s.Cache.Dir())
	if n := len(src.NoFace); n > 0 {
		fmt.Fprintf(stderr, "warning: no face found in %d image(s); used them whole: %s\n", n, dataset.Some(src.NoFace))
	}
	if n := len(src.Skipped); n > 0 {
		paths := make([]string, n)
		for i, k := range src.Skipped {
			paths[i] = k.Path + " (" + k.Reason + ")"
		}
		fmt.Fprintf(stderr, "warning: skipped %d unreadable or non-image file(s): %s\n", n, dataset.Some(paths))
	}
	return s, nil
}
