// Package atomicfile replaces files so that a reader (the daemon reloading a
// head, say) sees the whole old file or the whole new one, never a torn write,
// and so that the new one survives a power cut once Write returns.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Options change how WriteWith writes.
type Options struct {
	Perm os.FileMode
	// NoSync skips the fsyncs: the reader still sees a whole file or none, but
	// the file may be lost in a power cut. For files written often whose loss
	// costs nothing, such as the daemon's collected crops: an fsync per crop
	// would stall the writer and wear an SD card.
	NoSync bool
	// DirOwner gives the file its folder's owner when running as root, so that
	// `sudo deepfaked label` leaves files the daemon's user can still move.
	DirOwner bool
}

// Write writes data to a temporary file beside path, syncs it, renames it over
// path and syncs the folder.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteWith(path, data, Options{Perm: perm})
}

// tmpMark is in every temporary file's name: .<name>.tmp<random>.
const tmpMark = ".tmp"

// IsTemp reports whether a file name is one of WriteWith's temporary files,
// which an interrupted write may leave behind.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tmpMark)
}

// RemoveTemps removes the temporary files an interrupted Write of path left
// beside it (a power cut between creating one and renaming it).
func RemoveTemps(path string) error {
	matches, err := filepath.Glob(filepath.Join(filepath.Dir(path), "."+globEscape(filepath.Base(path))+tmpMark+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range matches {
		errs = append(errs, os.Remove(m))
	}
	return errors.Join(errs...)
}

// globEscape quotes filepath.Match's special characters in a file name.
func globEscape(name string) string {
	var b strings.Builder
	for _, r := range name {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// WriteWith is Write with options.
func WriteWith(path string, data []byte, opts Options) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tmpMark+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && !opts.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, opts.Perm)
	}
	if err == nil && opts.DirOwner {
		err = chownLike(tmp, dir)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if opts.NoSync {
		return nil
	}
	return syncDir(dir)
}

// Rename renames from over to, both in one folder, and syncs the folder, so
// that the rename survives a power cut once it returns.
func Rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

// Remove removes path and syncs its folder, so that the removal survives a
// power cut once it returns.
func Remove(path string) error {
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	// Some filesystems cannot sync a folder; the rename itself has happened.
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// MkdirAll makes dir and its missing parents with perm; when running as root
// each new folder gets the owner of the one above it (see Options.DirOwner).
func MkdirAll(dir string, perm os.FileMode) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return chownLike(dir, parent)
}

// chownLike gives path the owner of dir when running as root.
func chownLike(path, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return os.Lchown(path, int(s.Uid), int(s.Gid))
	}
	return nil
}
