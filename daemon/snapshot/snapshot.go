// Package snapshot keeps the JPEG of each event's best face: one file per
// camera and track (<dir>/<camera>/<run>-<track>.jpg), rewritten as a better
// face comes, with the oldest files removed beyond a count and an age. Saving
// never waits for the disk: a writer goroutine encodes and writes, and a save
// that finds it behind is dropped and counted, so the inference goroutine
// never stalls on an SD card.
package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/internal/ratelog"
	"github.com/deepfaked/deepfaked/internal/retain"
)

// Options configure a Store. Mean, Std and ColorOrder undo the model input's
// normalisation (the snapshot is the face the model saw).
type Options struct {
	Dir      string
	MaxCount int
	MaxAge   time.Duration // 0: no age bound
	// Mean, Std and ColorOrder are the model input's (spec.Metadata).
	Mean, Std  [3]float32
	ColorOrder string
	// Published, when set, is given each written JPEG (the daemon publishes
	// it, retained, on <prefix>/<camera>/snapshot). Called on the writer goroutine.
	Published func(camera string, jpeg []byte)
	// Queue is how many saves may wait for the writer.
	Queue int
}

// Store saves snapshots; Close stops its writer.
type Store struct {
	opts    Options
	log     *slog.Logger
	jobs    chan job
	done    chan struct{}
	mu      sync.Mutex
	closed  bool
	dropped atomic.Int64
	failLog *ratelog.Limiter
}

type job struct {
	camera, path string
	input        []float32
}

// New makes the folder, prunes what is over the bounds and starts the writer.
func New(opts Options, log *slog.Logger) (*Store, error) {
	switch {
	case opts.Dir == "":
		return nil, errors.New("snapshot: no folder")
	case opts.MaxCount < 1:
		return nil, fmt.Errorf("snapshot: max count %d: must be >= 1", opts.MaxCount)
	case opts.MaxAge < 0:
		return nil, fmt.Errorf("snapshot: max age %s: must not be negative", opts.MaxAge)
	case opts.Queue < 1:
		return nil, fmt.Errorf("snapshot: queue %d: must be >= 1", opts.Queue)
	}
	if log == nil {
		log = slog.Default()
	}
	if err := atomicfile.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s := &Store{opts: opts, log: log, jobs: make(chan job, opts.Queue), done: make(chan struct{}), failLog: ratelog.New(time.Minute)}
	if err := s.prune(time.Now()); err != nil {
		return nil, err
	}
	go s.write()
	return s, nil
}

// Path is where the snapshot of a camera's track in a run is kept.
func (s *Store) Path(camera, run string, track int64) string {
	return filepath.Join(s.opts.Dir, camera, contract.SnapshotName(run, track))
}

// Save queues input (one 3×S×S model input, copied) to be written as the JPEG
// at path (from Path). It reports false when the writer is behind or the
// store closed: the save is dropped and counted.
func (s *Store) Save(camera, path string, input []float32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	select {
	case s.jobs <- job{camera: camera, path: path, input: slices.Clone(input)}:
		return true
	default:
		s.dropped.Add(1)
		return false
	}
}

// Dropped is how many saves found the writer behind.
func (s *Store) Dropped() int64 { return s.dropped.Load() }

// Close writes what is queued and stops the writer.
func (s *Store) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.jobs)
	}
	s.mu.Unlock()
	<-s.done
}

func (s *Store) write() {
	defer close(s.done)
	img := gocv.NewMat()
	defer img.Close()
	for j := range s.jobs {
		if err := s.save(j, &img); err != nil {
			if ok, left := s.failLog.Allow(time.Now()); ok {
				s.log.Warn("snapshot not saved", "camera", j.camera, "file", j.path, "err", err, "not_logged_since_last", left)
			}
		}
	}
}

func (s *Store) save(j job, img *gocv.Mat) error {
	if err := preprocess.Decode(j.input, s.opts.Mean, s.opts.Std, s.opts.ColorOrder, img); err != nil {
		return err
	}
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, *img)
	if err != nil {
		return fmt.Errorf("jpeg: %w", err)
	}
	data := bytes.Clone(buf.GetBytes())
	buf.Close()
	if err := atomicfile.MkdirAll(filepath.Dir(j.path), 0o750); err != nil {
		return err
	}
	// No fsync: a snapshot lost in a power cut costs a picture, and an fsync
	// per snapshot would wear an SD card.
	if err := atomicfile.WriteWith(j.path, data, atomicfile.Options{Perm: 0o640, NoSync: true}); err != nil {
		return err
	}
	if s.opts.Published != nil {
		s.opts.Published(j.camera, data)
	}
	return s.prune(time.Now())
}

// prune removes temporary files an interrupted write left, snapshots older
// than MaxAge and the oldest beyond MaxCount.
func (s *Store) prune(now time.Time) error {
	if err := retain.Prune(s.opts.Dir, ".jpg", now, retain.Bounds{MaxCount: s.opts.MaxCount, MaxAge: s.opts.MaxAge}); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}
