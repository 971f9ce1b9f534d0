// Package retain keeps a folder of per-camera files (snapshots, clips:
// <dir>/<camera>/<name><ext>) within bounds, oldest first, and removes what
// an interrupted atomic write left.
package retain

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// Bounds are how many files, bytes and how old; a zero field is no bound.
type Bounds struct {
	MaxCount int
	MaxBytes int64
	MaxAge   time.Duration
}

// Prune removes from dir's camera folders the temporary files of
// interrupted writes, the files with ext older than MaxAge, and the oldest
// beyond MaxCount or MaxBytes (newest kept first). Call it where no write
// is under way (the one writer goroutine, after its write).
func Prune(dir, ext string, now time.Time, b Bounds) error {
	type file struct {
		path string
		mod  time.Time
		size int64
	}
	var files []file
	cams, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, cam := range cams {
		if !cam.IsDir() {
			continue
		}
		sub := filepath.Join(dir, cam.Name())
		entries, err := os.ReadDir(sub)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(sub, e.Name())
			if atomicfile.IsTemp(e.Name()) {
				os.Remove(p)
				continue
			}
			if !strings.HasSuffix(e.Name(), ext) {
				continue
			}
			if st, err := e.Info(); err == nil {
				files = append(files, file{p, st.ModTime(), st.Size()})
			}
		}
	}
	slices.SortFunc(files, func(a, b file) int { return b.mod.Compare(a.mod) }) // newest first
	var total int64
	var errs []error
	for i, f := range files {
		total += f.size
		if b.MaxCount > 0 && i >= b.MaxCount || b.MaxBytes > 0 && total > b.MaxBytes || b.MaxAge > 0 && now.Sub(f.mod) > b.MaxAge {
			if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune %s: %w", dir, err)
	}
	return nil
}
