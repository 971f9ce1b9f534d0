package featureset

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestLoad reads a folder's features through the configured backbone, then
// again from the cache; writes them out for other tools; opens the head for
// them; and says what is wrong with a missing backbone or a bad crop mode.
func TestLoad(t *testing.T) {
	backbone, head := testenv.Models(t)
	cfg := &config.Config{StateDir: t.TempDir(), Model: config.Model{Backbone: backbone, Head: head, Runtime: testenv.ORTLibrary(t)}}
	data := testenv.NoiseCrops(t, 3, 48, 1)
	out := filepath.Join(t.TempDir(), "out")
	for pass, wantCached := range []int{0, 6} {
		var loaded int
		s, err := Load(context.Background(), cfg, Options{Data: data, Crop: dataset.CropNone, Cache: CacheDir(cfg), FeaturesOut: out,
			Loaded: func(f *dataset.Folder) { loaded = len(f.Samples) }})
		if err != nil {
			t.Fatal(err)
		}
		if loaded != 6 || s.Dataset.Len() != 6 || s.Source.Cached != wantCached || s.Source.Extracted != 6-wantCached {
			t.Errorf("pass %d: loaded %d, %d samples, %d cached, %d extracted; want 6, 6, %d, %d",
				pass, loaded, s.Dataset.Len(), s.Source.Cached, s.Source.Extracted, wantCached, 6-wantCached)
		}
		if fi, err := os.Stat(filepath.Join(out, "features.f32")); err != nil || fi.Size() != int64(6*4*s.Dataset.Dim()) {
			t.Errorf("features.f32: %v, %v; want %d bytes", fi, err, 6*4*s.Dataset.Dim())
		}
		if b := s.BackboneInfo(backbone); b.ID != s.Backbone.ID() || b.Features != s.Dataset.Dim() || b.Path != backbone {
			t.Errorf("backbone info %+v", b)
		}
		h, err := s.OpenHead(head)
		if err != nil {
			t.Errorf("open the head: %v", err)
		} else {
			h.Close()
		}
		s.Close()
	}
	for _, tc := range []struct {
		name string
		cfg  func(c config.Config) *config.Config
		o    Options
		want string
	}{
		{"missing backbone", func(c config.Config) *config.Config { c.Model.Backbone = filepath.Join(data, "none.onnx"); return &c },
			Options{Data: data, Crop: dataset.CropNone}, "none.onnx"},
		{"bad crop", func(c config.Config) *config.Config { return &c }, Options{Data: data, Crop: "square"}, `crop mode "square"`},
		{"missing folder", func(c config.Config) *config.Config { return &c }, Options{Data: filepath.Join(data, "gone"), Crop: dataset.CropNone}, "gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Cache = t.TempDir()
			s, err := Load(context.Background(), tc.cfg(*cfg), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || s != nil {
				t.Errorf("Load: %v, %v; want an error naming %q", s, err, tc.want)
			}
		})
	}
}
