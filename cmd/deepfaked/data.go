package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train/features"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// dataFlags are the flags train and eval share.
type dataFlags struct {
	config, data, crop, cache, featuresOut string
	selfBlend                              features.SelfBlend // train's, from train.self_blend
}

func (f *dataFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (models, runtime, faces, train)")
	cmd.Flags().StringVar(&f.data, "data", "", "labelled folder: DIR/real/* and DIR/fake/*, or DIR/labels.csv (path,label,identity)")
	cmd.Flags().StringVar(&f.crop, "crop", workflow.CropNone, "none: each image is already a face crop (as the daemon saves them); face: crop the largest face found by faces.detector, as the daemon does with frames")
	cmd.Flags().StringVar(&f.cache, "cache", "", "feature cache folder (default <state_dir>/features)")
	cmd.Flags().StringVar(&f.featuresOut, "features-out", "", "also write the features as DIR/features.f32 + DIR/labels.csv (label,group) for other tools")
	_ = cmd.MarkFlagRequired("data")
}

// featureSet is a data folder's features with the models that made them.
type featureSet struct {
	*workflow.Features
	eng      *engine.Engine
	backbone *infer.Backbone
}

func (s *featureSet) Close() {
	if s.Features != nil {
		s.Features.Close()
	}
	if s.backbone != nil {
		s.backbone.Close()
	}
	if s.eng != nil {
		s.eng.Close()
	}
}

// backboneInfo describes the backbone for the report and the export.
func (s *featureSet) backboneInfo(path string) workflow.Backbone {
	m := s.backbone.Meta()
	return workflow.Backbone{Path: path, ID: s.backbone.ID(), InputSize: m.InputSize,
		FeatureShape: m.FeatureShape[:], Features: s.backbone.FeatureSize()}
}

// loadFeatures opens the engine and backbone the config names and loads the
// data folder's features, drawing progress on stderr.
func loadFeatures(ctx context.Context, cfg *config.Config, f dataFlags, stderr io.Writer) (s *featureSet, err error) {
	if f.crop != workflow.CropNone && f.crop != workflow.CropFace {
		return nil, fmt.Errorf("--crop %q: want %s or %s", f.crop, workflow.CropNone, workflow.CropFace)
	}
	s = &featureSet{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.eng, err = setup.Engine(cfg, newLogger(slog.LevelWarn)); err != nil {
		return s, err
	}
	if s.backbone, err = infer.LoadBackbone(s.eng, cfg.Model.Backbone); err != nil {
		return s, err
	}
	cacheDir := f.cacheDir(cfg)
	bar := newProgressBar(stderr, "features")
	opts := workflow.FeatureOptions{Dir: f.data, Backbone: s.backbone, BackboneID: s.backbone.ID(),
		Pre: setup.PreprocessParams(cfg, s.backbone.Meta()), Crop: f.crop, CacheDir: cacheDir, SelfBlend: f.selfBlend,
		Loaded: func(folder *dataset.Folder) {
			real, fake := folder.Counts()
			fmt.Fprintf(stderr, "%s: %d real, %d fake images (%s)\n", f.data, real, fake,
				folder.LabelsFrom())
			if n := f.selfBlend.Per; n > 0 {
				fmt.Fprintf(stderr, "self-blend: %d fakes made from each real image, %d in all\n", n, n*real)
			}
		},
		Progress: func(p features.Progress) {
			bar.update(p.Done, p.Total, -1, fmt.Sprintf("%d cached, %d extracted, %d skipped", p.Cached, p.Extracted, p.Skipped))
		}}
	if f.crop == workflow.CropFace {
		det, err := setup.Detector(cfg, s.eng)
		if err != nil {
			return s, err
		}
		defer det.Close()
		opts.Detector = det
		fc := cfg.Faces
		opts.CropKey = workflow.FaceCropKey(fc.Detector, fc.Model, fc.Margin, fc.MinSize, fc.Score)
	}
	s.Features, err = workflow.LoadFeatures(ctx, opts)
	bar.done()
	if err != nil {
		return s, err
	}
	src := s.Source
	fmt.Fprintf(stderr, "features: %d cached, %d extracted in %.1fs (cache %s)\n", src.Cached, src.Extracted, src.Seconds, s.Cache.Dir())
	if n := len(src.NoFace); n > 0 {
		fmt.Fprintf(stderr, "warning: no face found in %d image(s); used them whole: %s\n", n, listSome(src.NoFace))
	}
	if n := len(src.Skipped); n > 0 {
		paths := make([]string, n)
		for i, k := range src.Skipped {
			paths[i] = k.Path + " (" + k.Reason + ")"
		}
		fmt.Fprintf(stderr, "warning: skipped %d unreadable or non-image file(s): %s\n", n, listSome(paths))
	}
	if f.featuresOut != "" {
		if err := os.MkdirAll(f.featuresOut, 0o755); err != nil {
			return s, err
		}
		if err := s.Dataset.WriteFiles(filepath.Join(f.featuresOut, "features.f32"), filepath.Join(f.featuresOut, "labels.csv")); err != nil {
			return s, err
		}
	}
	return s, nil
}

func listSome(items []string) string {
	const most = 10
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:most], ", ") + fmt.Sprintf(", … and %d more", len(items)-most)
}

// cacheDir is --cache, or <state_dir>/features.
func (f dataFlags) cacheDir(cfg *config.Config) string {
	if f.cache != "" {
		return f.cache
	}
	return filepath.Join(cfg.StateDir, "features")
}
