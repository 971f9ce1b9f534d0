package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/modelsig"
	"github.com/deepfaked/deepfaked/infer/spec"
)

// headReloader takes up a new head without a restart. The classifier swaps
// heads atomically between batches, so no frame is lost and no verdict comes
// from a half-loaded model; a head that fails to load or does not fit the
// backbone is refused and the current one keeps serving.
type headReloader struct {
	mu   sync.Mutex // one reload at a time, whatever asked for it
	eng  *engine.Engine
	clf  *infer.Classifier
	path string
	pin  string        // model.head_sha256; "" pins nothing
	keys modelsig.Keys // model.trusted_keys; none checks no signature
	log  *slog.Logger
}

// Reload loads the head file again and swaps it in if it changed.
func (r *headReloader) Reload(reason string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.clf.HeadID()
	refuse := func(err error) (string, error) {
		r.log.Error("new head refused; the current head keeps serving", "reason", reason, "head", r.path, "current", cur, "err", err)
		return "", fmt.Errorf("head %s refused, %s keeps serving: %w", r.path, cur, err)
	}
	if err := spec.CheckPin(r.path, r.pin); err != nil {
		return refuse(fmt.Errorf("model.head_sha256: %w", err))
	}
	if _, err := modelsig.CheckFile(r.path, r.keys, modelsig.Head); err != nil {
		return refuse(fmt.Errorf("model.trusted_keys: %w", err))
	}
	h, err := infer.LoadHead(r.eng, r.path, r.clf.FeatureSize())
	if err != nil {
		return refuse(err)
	}
	if h.ID() == cur {
		_ = h.Close()
		r.log.Info("head unchanged", "reason", reason, "head", r.path, "id", cur)
		return "head " + cur + " unchanged", nil
	}
	old, err := r.clf.SwapHead(h)
	if err != nil {
		_ = h.Close()
		return refuse(err)
	}
	if err := old.Close(); err != nil {
		r.log.Warn("closing the previous head", "id", old.ID(), "err", err)
	}
	r.log.Info("head reloaded", "reason", reason, "head", r.path, "from", old.ID(), "to", h.ID(), "threshold", h.Threshold())
	return fmt.Sprintf("head %s -> %s", old.ID(), h.ID()), nil
}

// settle lets a head written in several steps finish before it is loaded; an
// atomic rename needs none, but costs only this delay.
const settle = 300 * time.Millisecond

// headWatcher says when the head file has changed (model.watch_head). It
// watches the folder, not the file: an install renames a new file over the
// old one, which a watch on the old inode would never see.
type headWatcher struct {
	changed chan struct{} // one pending change at most
	w       *fsnotify.Watcher
	done    chan struct{}
}

func watchHead(path string, log *slog.Logger) (*headWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch model.head: %w", err)
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch model.head folder %s: %w", filepath.Dir(path), err)
	}
	h := &headWatcher{changed: make(chan struct{}, 1), w: w, done: make(chan struct{})}
	go h.run(path, log)
	return h, nil
}

// run turns file events into changes until the watcher is closed.
func (h *headWatcher) run(path string, log *slog.Logger) {
	defer close(h.done)
	var due <-chan time.Time
	for {
		select {
		case ev, ok := <-h.w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == path && ev.Has(fsnotify.Create|fsnotify.Write|fsnotify.Rename) {
				due = time.After(settle)
			}
		case err, ok := <-h.w.Errors:
			if !ok {
				return
			}
			log.Warn("watching model.head", "err", err)
		case <-due:
			due = nil
			if _, err := os.Stat(path); err == nil { // a rename away is followed by the new file's create
				select {
				case h.changed <- struct{}{}:
				default: // a reload is already due
				}
			}
		}
	}
}

func (h *headWatcher) close() {
	_ = h.w.Close() // closes Events and Errors
	<-h.done
}
