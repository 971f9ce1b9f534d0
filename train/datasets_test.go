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

// The in-memory dataset and the reader of FeatureWriter's files are test
// helpers: the program trains from the feature cache (train/features).

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
