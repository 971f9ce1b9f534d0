// Package features turns a labelled data folder (package dataset) into
// backbone features for head training: it runs the images through the
// backbone with the daemon's preprocessing and keeps the features in an
// on-disk cache that training streams from.
package features

import (
	"fmt"

	"github.com/deepfaked/deepfaked/train"
)

// Sample is one image of a data folder whose features were found.
type Sample struct {
	Path  string // slash-separated, relative to the folder
	Label int    // train.Real or train.Fake
	Group string // the identity: k-fold never splits one
}

// Dataset is a train.Dataset over cached features: it reads each vector from
// the cache's pack on demand, so training holds one batch in memory.
type Dataset struct {
	cache   *Cache
	Samples []Sample // the samples whose features were found, in folder order
	offsets []int64
}

var _ train.Dataset = (*Dataset)(nil)

func (d *Dataset) Len() int           { return len(d.Samples) }
func (d *Dataset) Dim() int           { return d.cache.dim }
func (d *Dataset) Label(i int) int    { return d.Samples[i].Label }
func (d *Dataset) Group(i int) string { return d.Samples[i].Group }

// Features copies sample i's features into dst.
func (d *Dataset) Features(i int, dst []float32) error {
	if i < 0 || i >= len(d.Samples) {
		return fmt.Errorf("sample %d out of range [0,%d)", i, len(d.Samples))
	}
	return d.cache.Read(d.offsets[i], dst)
}

// WriteFiles writes the samples with train.FeatureWriter (flat float32
// features and a label,group CSV), for tools outside this program.
func (d *Dataset) WriteFiles(featuresPath, labelsPath string) error {
	w, err := train.CreateFeatureFiles(featuresPath, labelsPath, d.Dim())
	if err != nil {
		return err
	}
	x := make([]float32, d.Dim())
	for i, s := range d.Samples {
		if err := d.Features(i, x); err != nil {
			w.Close()
			return err
		}
		if err := w.Append(x, s.Label, s.Group); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}
