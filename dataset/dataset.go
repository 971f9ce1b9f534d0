// Package dataset is the labelled folder both flows share: the daemon's crop
// collector and `deepfaked label` add to it, `deepfaked train` and `eval` read
// it. A data folder is DIR/real/* and DIR/fake/*, or DIR/labels.csv
// (path,label,identity), which is authoritative once it exists.
package dataset

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// LabelsFile is the optional CSV in a data folder: path,label,identity.
const LabelsFile = "labels.csv"

// The two labels, spelled as the class folders and labels.csv spell them.
const (
	Real = "real"
	Fake = "fake"
)

// How a data folder's images are read (train, eval and quantize's --crop,
// train.gate_set_crop).
const (
	CropNone = "none" // each image is already a face crop, as the daemon saves them
	CropFace = "face" // crop the largest face the detector finds, as the daemon crops frames
)

// Crops are the crop modes.
func Crops() []string { return []string{CropNone, CropFace} }

// CheckCrop says what is wrong with a crop mode.
func CheckCrop(mode string) error {
	if mode != CropNone && mode != CropFace {
		return fmt.Errorf("crop mode %q: want %s or %s", mode, CropNone, CropFace)
	}
	return nil
}

// Sample is one labelled image of a data folder.
type Sample struct {
	Path  string // slash-separated, relative to the folder
	Label string // Real or Fake
	// Identity groups images (source video, person) that k-fold must keep on
	// one side of a split. Without labels.csv every image is its own identity.
	Identity string
}

// Skipped is a listed image left out, and why.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Folder is a data folder's samples, in a stable order.
type Folder struct {
	Dir       string
	Samples   []Sample
	Skipped   []Skipped // listed but missing or not a regular file
	HasLabels bool      // labels came from labels.csv
}

// ErrNoFake says a folder holds real images only. Load still returns the
// folder: training that makes its fakes from the real images (`deepfaked
// train --self-blend`) can use it.
var ErrNoFake = errors.New("no fake ones")

// Load reads a data folder. With DIR/labels.csv (header path,label,identity;
// label real/fake or 0/1) that file is authoritative; otherwise every file
// under DIR/real and DIR/fake (recursively, hidden files ignored) is a sample
// and its own identity. Malformed CSV rows are errors naming the line; listed
// files that are missing are skipped and listed. A folder without both
// classes is refused (with the folder; ErrNoFake when it lacks fakes).
func Load(dir string) (*Folder, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data folder %s is not a folder", dir)
	}
	f := &Folder{Dir: dir}
	rows, err := readLabelsFile(dir)
	switch {
	case err == nil:
		f.HasLabels = true
		for _, s := range rows {
			if st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(s.Path))); err != nil || !st.Mode().IsRegular() {
				reason := "not a regular file"
				if err != nil {
					reason = err.Error()
				}
				f.Skipped = append(f.Skipped, Skipped{Path: s.Path, Reason: reason})
				continue
			}
			f.Samples = append(f.Samples, s)
		}
	case errors.Is(err, fs.ErrNotExist):
		for _, class := range []string{Real, Fake} {
			imgs, err := classImages(dir, class)
			if err != nil {
				return nil, err
			}
			for _, p := range imgs {
				f.Samples = append(f.Samples, Sample{Path: p, Label: class, Identity: p})
			}
		}
	default:
		return nil, err
	}
	return f, f.check()
}

// LabelsFrom says where the labels came from, for messages: labels.csv or
// the class folders.
func (f *Folder) LabelsFrom() string {
	if f.HasLabels {
		return LabelsFile
	}
	return "real/ and fake/ folders"
}

// check refuses a folder training cannot use.
func (f *Folder) check() error {
	real, fake := f.Counts()
	switch {
	case real+fake == 0 && f.HasLabels:
		return fmt.Errorf("data folder %s: %s lists no existing image (%d missing)", f.Dir, LabelsFile, len(f.Skipped))
	case real+fake == 0:
		return fmt.Errorf("data folder %s has no images: put them in %s/real/ and %s/fake/, or list them in %s (path,label,identity)",
			f.Dir, f.Dir, f.Dir, LabelsFile)
	case real == 0:
		return fmt.Errorf("data folder %s has %d fake images but no real ones: both classes are needed", f.Dir, fake)
	case fake == 0:
		return fmt.Errorf("data folder %s has %d real images but %w: both classes are needed (or train with --self-blend, which makes fakes of the real ones)", f.Dir, real, ErrNoFake)
	}
	return nil
}

// Counts are the numbers of real and fake samples.
func (f *Folder) Counts() (real, fake int) {
	for _, s := range f.Samples {
		if s.Label == Fake {
			fake++
		} else {
			real++
		}
	}
	return real, fake
}

// readLabelsFile reads dir's labels.csv; an error wrapping fs.ErrNotExist
// says there is none.
func readLabelsFile(dir string) ([]Sample, error) {
	name := filepath.Join(dir, LabelsFile)
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	return parseLabels(name, bytes.NewReader(b))
}

// parseLabels reads labels.csv strictly: the header path,label,identity, then
// rows of a path inside the folder (listed once), real/fake/0/1 and a
// non-empty identity. Labels come back as Real or Fake.
func parseLabels(name string, r io.Reader) ([]Sample, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", name, err)
	}
	if head[0] != "path" || head[1] != "label" || head[2] != "identity" {
		return nil, fmt.Errorf("%s: header is %q, want path,label,identity", name, strings.Join(head, ","))
	}
	var out []Sample
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0) // only valid after a successful Read
		p, err := cleanRel(rec[0])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		label, err := parseLabel(rec[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		if rec[2] == "" {
			return nil, fmt.Errorf("%s line %d: empty identity for %s", name, line, p)
		}
		if first, dup := seen[p]; dup {
			return nil, fmt.Errorf("%s line %d: %s is already listed on line %d", name, line, p, first)
		}
		seen[p] = line
		out = append(out, Sample{Path: p, Label: label, Identity: rec[2]})
	}
}

// cleanRel accepts a slash-separated path inside the folder.
func cleanRel(p string) (string, error) {
	c := path.Clean(strings.ReplaceAll(p, `\`, "/"))
	if p == "" || path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q must be a file inside the data folder", p)
	}
	return c, nil
}

func parseLabel(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case Real, "0":
		return Real, nil
	case Fake, "1":
		return Fake, nil
	}
	return "", fmt.Errorf("label %q is not real, fake, 0 or 1", s)
}

// classImages are the files of dir/class that are samples without
// labels.csv: regular files or links to them, recursively, hidden files and
// folders left out, as sorted slash paths relative to dir. A missing class
// folder has none.
func classImages(dir, class string) ([]string, error) {
	root := filepath.Join(dir, class)
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != root {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() { // a broken link is left out
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// Some lists items for a message: all of them, or the first ten and how many
// more, so a folder of thousands of bad files gives one readable line.
func Some(items []string) string {
	const most = 10
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:most], ", ") + fmt.Sprintf(", … and %d more", len(items)-most)
}
