package dataset

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// Locked is a data folder held under its lock file, for adding samples: the
// daemon and `deepfaked label` may label at the same time.
type Locked struct {
	dir  string
	lock *os.File
}

// Lock makes dir if needed (owned like its parent when running as root) and
// waits for its lock.
func Lock(dir string) (*Locked, error) {
	if err := atomicfile.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	name := filepath.Join(dir, ".labels.lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data folder lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("data folder lock %s: %w", name, err)
	}
	return &Locked{dir: dir, lock: f}, nil
}

// Unlock releases the lock.
func (l *Locked) Unlock() { l.lock.Close() } // closing releases the flock

// Add lists samples in labels.csv, replacing rows of the same path, and
// rewrites it atomically. Since that file is authoritative once it exists,
// every other image of real/ and fake/ is listed too, each its own identity as
// Load gives them without the file. Rows of missing files are kept: Load
// skips them.
func (l *Locked) Add(samples []Sample) error {
	name := filepath.Join(l.dir, LabelsFile)
	table, err := readLabelsFile(l.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	at := map[string]int{}
	for i, s := range table {
		at[s.Path] = i
	}
	add := func(s Sample) {
		if i, ok := at[s.Path]; ok {
			table[i] = s
			return
		}
		at[s.Path] = len(table)
		table = append(table, s)
	}
	for _, s := range samples {
		p, err := cleanRel(s.Path)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if s.Label != Real && s.Label != Fake {
			return fmt.Errorf("%s: %s: label %q is not %s or %s", name, p, s.Label, Real, Fake)
		}
		if s.Identity == "" {
			return fmt.Errorf("%s: %s: empty identity", name, p)
		}
		s.Path = p
		add(s)
	}
	for _, class := range []string{Real, Fake} {
		imgs, err := classImages(l.dir, class)
		if err != nil {
			return err
		}
		for _, p := range imgs {
			if _, ok := at[p]; !ok {
				add(Sample{Path: p, Label: class, Identity: p})
			}
		}
	}
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	_ = w.Write([]string{"path", "label", "identity"})
	for _, s := range table {
		_ = w.Write([]string{s.Path, s.Label, s.Identity}) // a bytes.Buffer does not fail
	}
	w.Flush()
	return atomicfile.WriteWith(name, out.Bytes(), atomicfile.Options{Perm: 0o640, DirOwner: true})
}
