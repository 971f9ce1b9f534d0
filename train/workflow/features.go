package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/train/features"
)

// FeatureOptions say how to turn a data folder into features.
type FeatureOptions struct {
	Dir        string // the data folder (package dataset)
	Backbone   features.Backbone
	BackboneID string
	Pre        preprocess.Params // the daemon's crop and normalisation
	// Crop is dataset.CropNone or dataset.CropFace; dataset.CropFace needs Detector, and CropKey,
	// which names every setting that moves the crop (FaceCropKey): it is part
	// of the cache key.
	Crop     string
	Detector features.Detector
	CropKey  string
	CacheDir string
	// SelfBlend adds self-blended fakes of the real images (features.SelfBlend);
	// with it, a folder of real images alone can train.
	SelfBlend features.SelfBlend
	// Loaded is told the folder's counts before extraction starts.
	Loaded   func(f *dataset.Folder)
	Progress func(features.Progress)
}

// FaceCropKey names the face detector settings that move a crop.
func FaceCropKey(detector, model string, margin float64, minSize int, score float64) string {
	return fmt.Sprintf("face:%s:%s:margin=%g:min_size=%d:score=%g", detector, model, margin, minSize, score)
}

// Features are a data folder's features, streamed from the cache.
type Features struct {
	*features.Result
	Folder *dataset.Folder
	Cache  *features.Cache
	Source Source // for Options.Source
}

// Close closes the cache.
func (f *Features) Close() error { return f.Cache.Close() }

// LoadFeatures reads the data folder and takes every image's features from
// the cache, extracting and caching those it lacks.
func LoadFeatures(ctx context.Context, opts FeatureOptions) (*Features, error) {
	key := features.Key{Backbone: opts.BackboneID, InputSize: opts.Pre.Size, Crop: dataset.CropNone}
	switch opts.Crop {
	case dataset.CropNone:
		opts.Detector = nil
	case dataset.CropFace:
		if opts.Detector == nil || opts.CropKey == "" {
			return nil, fmt.Errorf("crop %s: no face detector", dataset.CropFace)
		}
		key.Crop = opts.CropKey
	default:
		return nil, dataset.CheckCrop(opts.Crop)
	}
	start := time.Now()
	folder, err := dataset.Load(opts.Dir)
	if err != nil && !(opts.SelfBlend.Per > 0 && errors.Is(err, dataset.ErrNoFake)) {
		return nil, err
	}
	if opts.Loaded != nil {
		opts.Loaded(folder)
	}
	pre, err := preprocess.New(opts.Pre)
	if err != nil {
		return nil, err
	}
	defer pre.Close()
	cache, err := features.OpenCache(opts.CacheDir, key, opts.Backbone.FeatureSize())
	if err != nil {
		return nil, err
	}
	ex := &features.Extractor{Backbone: opts.Backbone, InputSize: opts.Pre.Size, Pre: pre, Detector: opts.Detector, Batch: 16,
		SelfBlend: opts.SelfBlend}
	res, err := ex.Extract(ctx, folder, cache, opts.Progress)
	if err != nil {
		cache.Close()
		return nil, err
	}
	return &Features{Result: res, Folder: folder, Cache: cache, Source: Source{Dir: opts.Dir, HasLabels: folder.HasLabels,
		Crop: opts.Crop, SelfBlend: opts.SelfBlend.Per, Skipped: res.Skipped, NoFace: res.NoFace, Cached: res.Cached, Extracted: res.Extracted,
		Seconds: time.Since(start).Seconds()}}, nil
}
