package train

import (
	"bufio"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/deepfaked/deepfaked/dataset"
)

// Label values.
const (
	Real = 0
	Fake = 1
)

// ClassOf is a data folder's label (dataset.Real or dataset.Fake) as a
// label value.
func ClassOf(label string) int {
	if label == dataset.Fake {
		return Fake
	}
	return Real
}

// Dataset is what training reads: N samples of D float32 features, a label
// (Real or Fake) and a group (the identity or source video: samples of one
// group never straddle a train/validation split). Features copies sample i
// into dst (len D), so a dataset can stream from disk.
type Dataset interface {
	Len() int
	Dim() int
	Label(i int) int
	Group(i int) string
	Features(i int, dst []float32) error
}

// Labels are every sample's label, in order.
func Labels(ds Dataset) []int {
	l := make([]int, ds.Len())
	for i := range l {
		l[i] = ds.Label(i)
	}
	return l
}

// Groups are every sample's group, in order.
func Groups(ds Dataset) []string {
	g := make([]string, ds.Len())
	for i := range g {
		g[i] = ds.Group(i)
	}
	return g
}

// FeatureWriter writes features for tools outside this program
// (tools/reference_recipe.py): a flat little-endian float32 file (N×D, no
// header) and a CSV with header "label,group" whose row i describes sample i
// (label 0 real, 1 fake).
type FeatureWriter struct {
	feat, lab         *os.File
	fw                *bufio.Writer
	cw                *csv.Writer
	d                 int
	buf               []byte
	featPath, labPath string
}

// CreateFeatureFiles starts a feature file of dim-wide vectors and its labels CSV.
func CreateFeatureFiles(featuresPath, labelsPath string, dim int) (*FeatureWriter, error) {
	if dim < 1 {
		return nil, fmt.Errorf("features %s: dimension must be >= 1, got %d", featuresPath, dim)
	}
	feat, err := os.Create(featuresPath)
	if err != nil {
		return nil, fmt.Errorf("create features %s: %w", featuresPath, err)
	}
	lab, err := os.Create(labelsPath)
	if err != nil {
		feat.Close()
		return nil, fmt.Errorf("create labels %s: %w", labelsPath, err)
	}
	w := &FeatureWriter{feat: feat, lab: lab, fw: bufio.NewWriterSize(feat, 1<<20), cw: csv.NewWriter(lab),
		d: dim, buf: make([]byte, 4*dim), featPath: featuresPath, labPath: labelsPath}
	if err := w.cw.Write([]string{"label", "group"}); err != nil {
		w.Close()
		return nil, fmt.Errorf("write labels %s: %w", labelsPath, err)
	}
	return w, nil
}

// Append writes one sample.
func (w *FeatureWriter) Append(features []float32, label int, group string) error {
	if len(features) != w.d {
		return fmt.Errorf("features %s: sample has %d values, want %d", w.featPath, len(features), w.d)
	}
	if label != Real && label != Fake {
		return fmt.Errorf("labels %s: label %d is not 0 (real) or 1 (fake)", w.labPath, label)
	}
	if group == "" {
		return fmt.Errorf("labels %s: empty group", w.labPath)
	}
	for j, v := range features {
		binary.LittleEndian.PutUint32(w.buf[4*j:], math.Float32bits(v))
	}
	if _, err := w.fw.Write(w.buf); err != nil {
		return fmt.Errorf("write features %s: %w", w.featPath, err)
	}
	if err := w.cw.Write([]string{strconv.Itoa(label), group}); err != nil {
		return fmt.Errorf("write labels %s: %w", w.labPath, err)
	}
	return nil
}

// Close flushes and closes both files.
func (w *FeatureWriter) Close() error {
	w.cw.Flush()
	errs := []error{w.fw.Flush(), w.cw.Error(), w.feat.Close(), w.lab.Close()}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s / %s: %w", w.featPath, w.labPath, err)
	}
	return nil
}
