package train

import (
	"bufio"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"unsafe"
)

// Label values.
const (
	Real = 0
	Fake = 1
)

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

// MemDataset holds everything in memory (tests, small sets).
type MemDataset struct {
	D      int
	X      []float32 // N×D row-major
	Labels []int
	Groups []string
}

func (m *MemDataset) Len() int           { return len(m.Labels) }
func (m *MemDataset) Dim() int           { return m.D }
func (m *MemDataset) Label(i int) int    { return m.Labels[i] }
func (m *MemDataset) Group(i int) string { return m.Groups[i] }
func (m *MemDataset) Features(i int, dst []float32) error {
	if i < 0 || i >= len(m.Labels) {
		return fmt.Errorf("sample %d out of range [0,%d)", i, len(m.Labels))
	}
	copy(dst, m.X[i*m.D:(i+1)*m.D])
	return nil
}

// FileDataset reads features from a flat little-endian float32 file (N×D, no
// header) with ReadAt, so only the batch being trained is in memory, and
// labels from a CSV with header "label,group" (row i describes sample i;
// label 0 real, 1 fake). D is the file size / 4 / N.
type FileDataset struct {
	f      *os.File
	path   string
	d      int
	labels []int
	groups []string
}

// OpenFileDataset opens the feature file and reads the labels CSV.
func OpenFileDataset(featuresPath, labelsPath string) (*FileDataset, error) {
	labels, groups, err := readLabels(labelsPath)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(featuresPath)
	if err != nil {
		return nil, fmt.Errorf("open features %s: %w", featuresPath, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat features %s: %w", featuresPath, err)
	}
	n := int64(len(labels))
	if n == 0 || st.Size() == 0 || st.Size()%(4*n) != 0 {
		f.Close()
		return nil, fmt.Errorf("features %s: %d bytes is not %d samples (from %s) of whole float32 vectors", featuresPath, st.Size(), n, labelsPath)
	}
	return &FileDataset{f: f, path: featuresPath, d: int(st.Size() / (4 * n)), labels: labels, groups: groups}, nil
}

func readLabels(path string) ([]int, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open labels %s: %w", path, err)
	}
	defer f.Close()
	return parseLabels(path, f)
}

func parseLabels(path string, r io.Reader) ([]int, []string, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = 2
	head, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("labels %s: header: %w", path, err)
	}
	if head[0] != "label" || head[1] != "group" {
		return nil, nil, fmt.Errorf("labels %s: header is %q, want \"label,group\"", path, head)
	}
	var labels []int
	var groups []string
	for row := 2; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("labels %s: %w", path, err)
		}
		l, err := strconv.Atoi(rec[0])
		if err != nil || (l != Real && l != Fake) {
			return nil, nil, fmt.Errorf("labels %s line %d: label %q is not 0 (real) or 1 (fake)", path, row, rec[0])
		}
		if rec[1] == "" {
			return nil, nil, fmt.Errorf("labels %s line %d: empty group", path, row)
		}
		labels = append(labels, l)
		groups = append(groups, rec[1])
	}
	if len(labels) == 0 {
		return nil, nil, fmt.Errorf("labels %s: no samples", path)
	}
	return labels, groups, nil
}

func (d *FileDataset) Len() int           { return len(d.labels) }
func (d *FileDataset) Dim() int           { return d.d }
func (d *FileDataset) Label(i int) int    { return d.labels[i] }
func (d *FileDataset) Group(i int) string { return d.groups[i] }
func (d *FileDataset) Close() error       { return d.f.Close() }

// Features reads sample i straight into dst's memory (no staging copy).
func (d *FileDataset) Features(i int, dst []float32) error {
	if i < 0 || i >= len(d.labels) || len(dst) != d.d {
		return fmt.Errorf("features %s: sample %d into %d floats (have %d samples of %d)", d.path, i, len(dst), len(d.labels), d.d)
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*d.d)
	if _, err := d.f.ReadAt(buf, int64(i)*int64(4*d.d)); err != nil {
		return fmt.Errorf("features %s: read sample %d: %w", d.path, i, err)
	}
	if !littleEndianHost {
		for j := range dst {
			dst[j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
		}
	}
	return nil
}

var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// FeatureWriter writes the FileDataset format one sample at a time.
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
