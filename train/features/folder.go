// Package features turns a labelled folder of face images into backbone
// features for head training: it reads the folder (DIR/real, DIR/fake or
// DIR/labels.csv), runs the images through the backbone with the daemon's
// preprocessing, and keeps the features in an on-disk cache that training
// streams from.
package features

import (
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

	"github.com/deepfaked/deepfaked/train"
)

// LabelsFile is the optional CSV in a data folder: path,label,identity.
const LabelsFile = "labels.csv"

// Sample is one labelled image of a data folder.
type Sample struct {
	Path  string // slash-separated, relative to the folder
	Label int    // train.Real or train.Fake
	// Group is the identity (source video, person): k-fold never splits one.
	// Without labels.csv every image is its own group.
	Group string
}

// Skipped is an image left out, and why.
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

// LoadFolder reads a data folder. With DIR/labels.csv (header
// path,label,identity; label real/fake or 0/1) that file is authoritative;
// otherwise every file under DIR/real and DIR/fake (recursively, hidden files
// ignored) is a sample and its own group. Malformed CSV rows are errors naming
// the line; listed files that are missing are skipped and listed.
func LoadFolder(dir string) (*Folder, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data folder %s is not a folder", dir)
	}
	f := &Folder{Dir: dir}
	lf, err := os.Open(filepath.Join(dir, LabelsFile))
	switch {
	case err == nil:
		defer lf.Close()
		f.HasLabels = true
		if err := f.readLabels(lf); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := f.scan(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("data folder: %w", err)
	}
	return f, f.check()
}

func (f *Folder) readLabels(r io.Reader) error {
	name := filepath.Join(f.Dir, LabelsFile)
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%s: header: %w", name, err)
	}
	if head[0] != "path" || head[1] != "label" || head[2] != "identity" {
		return fmt.Errorf("%s: header is %q, want path,label,identity", name, strings.Join(head, ","))
	}
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0) // only valid after a successful Read
		p, err := cleanRel(rec[0])
		if err != nil {
			return fmt.Errorf("%s line %d: %w", name, line, err)
		}
		label, err := parseLabel(rec[1])
		if err != nil {
			return fmt.Errorf("%s line %d: %w", name, line, err)
		}
		if rec[2] == "" {
			return fmt.Errorf("%s line %d: empty identity for %s", name, line, p)
		}
		if first, dup := seen[p]; dup {
			return fmt.Errorf("%s line %d: %s is already listed on line %d", name, line, p, first)
		}
		seen[p] = line
		if st, err := os.Stat(filepath.Join(f.Dir, filepath.FromSlash(p))); err != nil || !st.Mode().IsRegular() {
			reason := "not a regular file"
			if err != nil {
				reason = err.Error()
			}
			f.Skipped = append(f.Skipped, Skipped{Path: p, Reason: reason})
			continue
		}
		f.Samples = append(f.Samples, Sample{Path: p, Label: label, Group: rec[2]})
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

func parseLabel(s string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "real", "0":
		return train.Real, nil
	case "fake", "1":
		return train.Fake, nil
	}
	return 0, fmt.Errorf("label %q is not real, fake, 0 or 1", s)
}

func (f *Folder) scan() error {
	for _, c := range []struct {
		sub   string
		label int
	}{{"real", train.Real}, {"fake", train.Fake}} {
		root := filepath.Join(f.Dir, c.sub)
		if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var found []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && p != root {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			regular := d.Type().IsRegular()
			if d.Type()&fs.ModeSymlink != 0 { // a linked image counts; a broken link is left out
				st, err := os.Stat(p)
				regular = err == nil && st.Mode().IsRegular()
			}
			if regular {
				rel, err := filepath.Rel(f.Dir, p)
				if err != nil {
					return err
				}
				found = append(found, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("data folder: %w", err)
		}
		slices.Sort(found)
		for _, p := range found {
			f.Samples = append(f.Samples, Sample{Path: p, Label: c.label, Group: p})
		}
	}
	return nil
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
		return fmt.Errorf("data folder %s has %d real images but no fake ones: both classes are needed", f.Dir, real)
	}
	return nil
}

// Counts are the numbers of real and fake samples.
func (f *Folder) Counts() (real, fake int) {
	for _, s := range f.Samples {
		if s.Label == train.Fake {
			fake++
		} else {
			real++
		}
	}
	return real, fake
}
