package collect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// MetaDir is the data folder's sub-folder for labelled crops' sidecars, out of
// real/ and fake/ where training would take them for images.
const MetaDir = "meta"

// IdentityWindow groups labelled crops that name no track for k-fold:
// crops of one camera captured in the same window are near-duplicates of
// one scene. Time, unlike frame numbers, does not depend on the camera's
// frame rate or restart with the daemon.
const IdentityWindow = 10 * time.Minute

// Identity is the labels.csv identity of a crop, which training never splits
// between training and validation: its track (camera/run-track), whose
// crops are near-duplicates of one face over consecutive frames, so that a
// labelling session over many people gives many groups; a crop that names
// no track falls back to its camera and 10-minute window (camera@start).
func Identity(m Meta) string {
	if m.Run != "" && m.Track > 0 {
		return fmt.Sprintf("%s/%s-%d", m.Camera, m.Run, m.Track)
	}
	return m.Camera + "@" + m.TS.UTC().Truncate(IdentityWindow).Format("20060102T1504Z")
}

// Folders are where labelling takes crops from and puts them.
type Folders struct {
	Collect string // the collector's folder (Options.Dir)
	Dataset string // the data folder `deepfaked train --data` reads
}

// Label moves the crops collected from camera's frame (every face of it) out
// of f.Collect into f.Dataset/real/ or f.Dataset/fake/, their sidecars into
// f.Dataset/meta/, and lists them in f.Dataset/labels.csv, which
// `deepfaked train --data` reads. It returns the new image paths. When the
// frame number was collected more than once (the daemon restarted or a file
// looped), the newest capture is labelled.
func (f Folders) Label(camera string, frame int64, label string) ([]string, error) {
	_, dst, err := labelFrame(f.Collect, f.Dataset, camera, frame, label)
	return dst, err
}

// LabelPath is Label for one collected crop, named by its JPEG or sidecar path.
func (f Folders) LabelPath(path, label string) ([]string, error) {
	_, dst, err := labelPath(f.Collect, f.Dataset, path, label)
	return dst, err
}

func checkLabel(label string) error {
	if label != dataset.Real && label != dataset.Fake {
		return fmt.Errorf("label %q: want %s or %s", label, dataset.Real, dataset.Fake)
	}
	return nil
}

// labelFrame returns the moved crops' old and new paths.
func labelFrame(collectDir, datasetDir, camera string, frame int64, label string) (src, dst []string, err error) {
	if err := checkLabel(label); err != nil {
		return nil, nil, err
	}
	if !contract.ValidName(camera) {
		return nil, nil, fmt.Errorf("camera %q: may only hold letters, digits, _ and -", camera)
	}
	if frame < 0 {
		return nil, nil, fmt.Errorf("frame %d is negative", frame)
	}
	all, err := cameraCrops(collectDir, camera)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("camera %s has no collected crops in %s", camera, collectDir)
	}
	if err != nil {
		return nil, nil, err
	}
	var newest int64 = -1
	for _, c := range all {
		if c.Meta.Frame == frame {
			newest = max(newest, c.Meta.TS.UnixNano())
		}
	}
	if newest < 0 {
		return nil, nil, fmt.Errorf("camera %s frame %d: no collected crop in %s (never saved, rotated out or already labelled)",
			camera, frame, filepath.Join(collectDir, camera))
	}
	crops := slices.DeleteFunc(all, func(c Crop) bool { return c.Meta.Frame != frame || c.Meta.TS.UnixNano() != newest })
	return move(datasetDir, crops, label)
}

func labelPath(collectDir, datasetDir, p, label string) (src, dst []string, err error) {
	if err := checkLabel(label); err != nil {
		return nil, nil, err
	}
	root, err := filepath.Abs(collectDir)
	if err != nil {
		return nil, nil, err
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, nil, err
	}
	if j, ok := strings.CutSuffix(abs, ".json"); ok {
		abs = j + ".jpg"
	}
	rel, err := filepath.Rel(root, abs)
	camera, name, _ := strings.Cut(filepath.ToSlash(rel), "/")
	if _, _, _, ok := parseName(name); err != nil || !ok || !contract.ValidName(camera) || strings.Contains(name, "/") {
		return nil, nil, fmt.Errorf("%s is not a collected crop (%s/<camera>/<frame>-<time>-<face>.jpg)", p, collectDir)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, nil, fmt.Errorf("crop %s: %w (already labelled or rotated out?)", p, err)
	}
	return move(datasetDir, []Crop{readCrop(abs, camera, name)}, label)
}

// move moves crops into datasetDir under the data folder's lock.
func move(datasetDir string, crops []Crop, label string) (src, dst []string, err error) {
	data, err := dataset.Lock(datasetDir)
	if err != nil {
		return nil, nil, err
	}
	defer data.Unlock()
	for _, d := range []string{label, MetaDir} {
		if err := atomicfile.MkdirAll(filepath.Join(datasetDir, d), 0o750); err != nil {
			return nil, nil, fmt.Errorf("data folder: %w", err)
		}
	}
	// All or nothing: until labels.csv has the rows, every step is undone on
	// failure (a full disk), so that a label either applies whole or leaves
	// the crops where they were, still labellable.
	rows := make([]dataset.Sample, 0, len(crops))
	var written []string // dataset sidecars
	undo := func(err error) ([]string, []string, error) {
		for i := len(dst) - 1; i >= 0; i-- {
			err = errors.Join(err, moveFile(dst[i], src[i]))
		}
		for _, p := range written {
			err = errors.Join(err, os.Remove(p))
		}
		return nil, nil, err
	}
	for _, c := range crops {
		name := c.Meta.Camera + "-" + strings.TrimSuffix(filepath.Base(c.Path), ".jpg")
		rel := label + "/" + name + ".jpg"
		to := filepath.Join(datasetDir, filepath.FromSlash(rel))
		if err := moveFile(c.Path, to); err != nil {
			return undo(fmt.Errorf("label camera %s frame %d: %w", c.Meta.Camera, c.Meta.Frame, err))
		}
		src, dst = append(src, c.Path), append(dst, to)
		m := c.Meta
		m.Label = label
		side, err := m.marshal()
		p := filepath.Join(datasetDir, MetaDir, name+".json")
		if err == nil {
			err = atomicfile.WriteWith(p, side, fileOptions(false))
		}
		if err != nil {
			return undo(fmt.Errorf("label camera %s frame %d: %w", c.Meta.Camera, c.Meta.Frame, err))
		}
		written = append(written, p)
		rows = append(rows, dataset.Sample{Path: rel, Label: label, Identity: Identity(m)})
	}
	if err := data.Add(rows); err != nil {
		return undo(fmt.Errorf("label: %w", err))
	}
	// Applied. A collect sidecar left by a failed remove is an orphan the
	// collector's rotation removes; the label stands.
	for _, c := range crops {
		_ = os.Remove(sidecar(c.Path))
	}
	return src, dst, nil
}

// moveFile renames, or copies and removes across file systems.
func moveFile(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("%s already exists", to)
	}
	err := os.Rename(from, to)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteWith(to, b, fileOptions(true)); err != nil {
		return err
	}
	return os.Remove(from)
}
