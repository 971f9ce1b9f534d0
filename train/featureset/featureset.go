// Package featureset opens the backbone the configuration names and reads a
// labelled folder's features through it, as the daemon would crop and
// preprocess them (the feature cache, face crops, self-blended fakes): the
// data of `deepfaked train`, `eval --data` and quantize's accuracy guard.
package featureset

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train/features"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// Options say which folder to read and how.
type Options struct {
	Data string // the labelled folder (package dataset)
	// Crop is dataset.CropNone or dataset.CropFace (faces.detector's crop).
	Crop string
	// Cache is the feature cache's folder; CacheDir gives the default.
	Cache string
	// FeaturesOut, when set, also gets the features as features.f32 and
	// labels.csv (label,group) for other tools.
	FeaturesOut string
	SelfBlend   features.SelfBlend
	Log         *slog.Logger // the engine's
	// Loaded is told the folder's counts before extraction starts.
	Loaded   func(*dataset.Folder)
	Progress func(features.Progress)
}

// CacheDir is the default feature cache: <state_dir>/features.
func CacheDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "features") }

// Set is a folder's features with the engine and backbone that made them.
type Set struct {
	*workflow.Features
	Engine   *engine.Engine
	Backbone *infer.Backbone
}

// Load starts the engine, loads model.backbone and reads o.Data's features,
// from the cache where it has them.
func Load(ctx context.Context, cfg *config.Config, o Options) (s *Set, err error) {
	s = &Set{}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if s.Engine, err = setup.Engine(cfg, o.Log); err != nil {
		return s, err
	}
	if s.Backbone, err = infer.LoadBackbone(s.Engine, cfg.Model.Backbone); err != nil {
		return s, err
	}
	fo := workflow.FeatureOptions{Dir: o.Data, Backbone: s.Backbone, BackboneID: s.Backbone.ID(),
		Pre: setup.PreprocessParams(cfg, s.Backbone.Meta()), Crop: o.Crop, CacheDir: o.Cache, SelfBlend: o.SelfBlend,
		Loaded: o.Loaded, Progress: o.Progress}
	if o.Crop == dataset.CropFace {
		det, err := setup.Detector(cfg, s.Engine)
		if err != nil {
			return s, err
		}
		defer det.Close()
		fc := cfg.Faces
		fo.Detector, fo.CropKey = det, workflow.FaceCropKey(fc.Detector, fc.Model, fc.Margin, fc.MinSize, fc.Score)
	}
	if s.Features, err = workflow.LoadFeatures(ctx, fo); err != nil {
		return s, err
	}
	if o.FeaturesOut != "" {
		if err := os.MkdirAll(o.FeaturesOut, 0o755); err != nil {
			return s, fmt.Errorf("features out: %w", err)
		}
		if err := s.Dataset.WriteFiles(filepath.Join(o.FeaturesOut, "features.f32"), filepath.Join(o.FeaturesOut, "labels.csv")); err != nil {
			return s, err
		}
	}
	return s, nil
}

// BackboneInfo describes the backbone, loaded from path, for the training
// report and the head's export.
func (s *Set) BackboneInfo(path string) workflow.Backbone {
	m := s.Backbone.Meta()
	return workflow.Backbone{Path: path, ID: s.Backbone.ID(), InputSize: m.InputSize,
		FeatureShape: m.FeatureShape[:], Features: s.Backbone.FeatureSize()}
}

// OpenHead loads a head file for these features, as the daemon runs it.
func (s *Set) OpenHead(path string) (*infer.Head, error) {
	return infer.LoadHead(s.Engine, path, s.Backbone.FeatureSize())
}

// Close releases the cache, the backbone and the engine.
func (s *Set) Close() {
	if s.Features != nil {
		s.Features.Close()
	}
	if s.Backbone != nil {
		s.Backbone.Close()
	}
	if s.Engine != nil {
		s.Engine.Close()
	}
}
