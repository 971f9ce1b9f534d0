// Package teach collects what "teach this camera" learns from: N faces of
// one camera, every Nth one so that they span time, saved by a
// collect.Collector of their own and turned into a data folder of real
// faces (real/ and labels.csv) that `deepfaked train --self-blend` trains on.
package teach

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/train/collect"
)

// Groups is how many groups (labels.csv identities) a session's faces are
// split into, each a run of consecutive faces: near-duplicates stay on one
// side of the cross-validation's and the gate's splits, and there are
// enough groups for both.
const Groups = 20

// Options configure a Teacher.
type Options struct {
	// Dir holds the sessions: Dir/<UTC time>/collect while collecting, then
	// Dir/<UTC time>/data, the data folder.
	Dir string
	// Collect is how faces are saved (JPEG quality, the model input's
	// normalisation); its Dir, EveryN and caps are set per session.
	Collect collect.Options
	Log     *slog.Logger
}

// Teacher runs one collection at a time. Offer is safe for concurrent use
// and never blocks.
type Teacher struct {
	opts Options
	mu   sync.Mutex
	s    *session // collecting, or nil
}

type session struct {
	camera  string
	want    int
	queued  int
	c       *collect.Collector
	full    chan struct{} // closed when want faces are queued
	stopped bool
}

// New makes a Teacher; nothing is collected until Collect.
func New(opts Options) *Teacher {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Teacher{opts: opts}
}

// Offer passes f to the session's collector when it is of the camera being
// taught and more faces are wanted.
func (t *Teacher) Offer(f collect.Face) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	if s == nil || s.stopped || f.Camera != s.camera || !s.c.Offer(f) {
		return false
	}
	s.queued++
	if s.queued == s.want {
		s.stopped = true
		close(s.full)
	}
	return true
}

// Collect saves n faces of camera, every every-th face it sees, telling
// progress how many are saved, and returns the data folder made of them. It
// returns when the folder is ready, or with ctx's error (the faces saved so
// far are removed).
func (t *Teacher) Collect(ctx context.Context, camera string, n, every int, progress func(saved int)) (string, error) {
	if n < Groups || every < 1 {
		return "", fmt.Errorf("teach: %d faces, every %d: want at least %d faces, every 1 or more", n, every, Groups)
	}
	dir := filepath.Join(t.opts.Dir, time.Now().UTC().Format("20060102T150405.000Z"))
	o := t.opts.Collect
	o.Dir, o.EveryN, o.BandLow, o.BandHigh, o.MaxFiles, o.MaxBytes = filepath.Join(dir, "collect"), every, 0, 0, n, 0
	c, err := collect.New(o, t.opts.Log)
	if err != nil {
		return "", fmt.Errorf("teach camera %q: %w", camera, err)
	}
	s := &session{camera: camera, want: n, c: c, full: make(chan struct{})}
	t.mu.Lock()
	if t.s != nil {
		t.mu.Unlock()
		c.Close()
		os.RemoveAll(dir)
		return "", errors.New("teach: a camera is being taught already; one at a time")
	}
	t.s = s
	t.mu.Unlock()
	stop := func() {
		t.mu.Lock()
		s.stopped, t.s = true, nil
		t.mu.Unlock()
		c.Close() // writes what is queued
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			stop()
			os.RemoveAll(dir)
			return "", ctx.Err()
		case <-s.full:
			done = true
		case <-tick.C:
		}
		progress(int(c.Stats().Saved))
	}
	stop()
	progress(int(c.Stats().Saved))
	data, err := makeDataFolder(dir, camera)
	if err != nil {
		return "", fmt.Errorf("teach camera %q: %w", camera, err)
	}
	return data, nil
}

// makeDataFolder moves a session's crops into dir/data/real and writes
// dir/data/labels.csv: oldest first, in Groups runs of consecutive faces.
func makeDataFolder(dir, camera string) (string, error) {
	crops, err := collect.List(filepath.Join(dir, "collect"))
	if err != nil {
		return "", err
	}
	if len(crops) < Groups {
		return "", fmt.Errorf("%d faces saved, too few to train on (at least %d)", len(crops), Groups)
	}
	slices.Reverse(crops) // List is newest first
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, dataset.Real), 0o750); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"path", "label", "identity"})
	for i, c := range crops {
		rel := dataset.Real + "/" + filepath.Base(c.Path)
		if err := os.Rename(c.Path, filepath.Join(data, filepath.FromSlash(rel))); err != nil {
			return "", err
		}
		w.Write([]string{rel, dataset.Real, fmt.Sprintf("%s#%02d", camera, i*Groups/len(crops))})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return "", err
	}
	if err := atomicfile.Write(filepath.Join(data, dataset.LabelsFile), buf.Bytes(), 0o640); err != nil {
		return "", err
	}
	return data, nil
}
