package collect

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// Why a crop was saved.
const (
	ReasonBand   = "band"    // p_fake in the uncertainty band
	ReasonEveryN = "every_n" // the camera's Nth face
)

// Meta is a crop's sidecar: <name>.json next to <name>.jpg.
type Meta struct {
	Camera    string    `json:"camera"`
	Frame     int64     `json:"frame"`
	Face      int       `json:"face"`
	TS        time.Time `json:"ts"`  // RFC 3339 with nanoseconds
	Box       [4]int    `json:"box"` // x, y, w, h in frame pixels
	PFake     float64   `json:"p_fake"`
	Threshold float64   `json:"threshold"`
	Model     Model     `json:"model"`
	Reason    string    `json:"reason"`
	// Run and Track name the face's track (the daemon's run id and the
	// track's number): its identity for k-fold. Empty and 0 for crops
	// collected before tracks were recorded.
	Run   string `json:"run,omitempty"`
	Track int64  `json:"track,omitempty"`
	// Label is set when the crop is moved into a data folder.
	Label string `json:"label,omitempty"`
}

// Model names the models that scored the crop (sha256 prefixes, as in verdicts).
type Model struct {
	Backbone string `json:"backbone"`
	Head     string `json:"head"`
}

func (m *Meta) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sidecar of camera %s frame %d: %w", m.Camera, m.Frame, err)
	}
	return append(b, '\n'), nil
}

// fileName names a crop: frame, capture time and face index. Frame numbers
// start again at 0 when the daemon restarts or a file loops; the capture time
// keeps those crops apart. Zero padding sorts a camera's crops by frame.
func fileName(frame int64, ts time.Time, face int) string {
	return fmt.Sprintf("%012d-%019d-%02d", frame, max(ts.UnixNano(), 0), face)
}

// parseName reads a crop's JPEG file name.
func parseName(name string) (frame, tsNano int64, face int, ok bool) {
	base, found := strings.CutSuffix(name, ".jpg")
	parts := strings.Split(base, "-")
	if !found || len(parts) != 3 {
		return 0, 0, 0, false
	}
	var err [3]error
	frame, err[0] = strconv.ParseInt(parts[0], 10, 64)
	tsNano, err[1] = strconv.ParseInt(parts[1], 10, 64)
	face64, e := strconv.ParseInt(parts[2], 10, 32)
	err[2] = e
	if errors.Join(err[:]...) != nil || frame < 0 || tsNano < 0 || face64 < 0 {
		return 0, 0, 0, false
	}
	return frame, tsNano, int(face64), true
}

func sidecar(jpeg string) string { return strings.TrimSuffix(jpeg, ".jpg") + ".json" }

// fileOptions are how crops, sidecars and labelled images are written:
// readers see whole files; durable only where a file is moved out of the
// collect folder (losing a collected crop in a power cut costs nothing, an
// fsync per crop would stall the writer); owned like their folder so that
// `sudo deepfaked label` leaves files the daemon's user can still move.
func fileOptions(durable bool) atomicfile.Options {
	return atomicfile.Options{Perm: 0o640, NoSync: !durable, DirOwner: true}
}

// Crop is a collected crop waiting for a label.
type Crop struct {
	Path string // the JPEG
	Meta Meta
}

// List returns the crops in collectDir not yet labelled, newest first. A crop
// whose sidecar cannot be read is listed with what its file name tells.
func List(collectDir string) ([]Crop, error) {
	cams, err := os.ReadDir(collectDir)
	if err != nil {
		return nil, fmt.Errorf("collect folder: %w", err)
	}
	var out []Crop
	for _, cam := range cams {
		if !cam.IsDir() || !contract.ValidName(cam.Name()) {
			continue
		}
		crops, err := cameraCrops(collectDir, cam.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, crops...)
	}
	slices.SortFunc(out, func(a, b Crop) int {
		if d := b.Meta.TS.Compare(a.Meta.TS); d != 0 {
			return d
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// cameraCrops reads one camera's crops, in file name order.
func cameraCrops(collectDir, camera string) ([]Crop, error) {
	dir := filepath.Join(collectDir, camera)
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("collect folder of camera %s: %w", camera, err)
	}
	var out []Crop
	for _, f := range files {
		if _, _, _, ok := parseName(f.Name()); !ok || !f.Type().IsRegular() {
			continue
		}
		out = append(out, readCrop(filepath.Join(dir, f.Name()), camera, f.Name()))
	}
	return out, nil
}

// readCrop reads a crop's sidecar; name is a valid crop file name.
func readCrop(path, camera, name string) Crop {
	frame, ts, face, _ := parseName(name)
	c := Crop{Path: path, Meta: Meta{Camera: camera, Frame: frame, Face: face, TS: time.Unix(0, ts).UTC()}}
	if b, err := os.ReadFile(sidecar(path)); err == nil {
		var m Meta
		if json.Unmarshal(b, &m) == nil && m.Camera == camera && m.Frame == frame && m.Face == face {
			c.Meta = m
		}
	}
	return c
}
