package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
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
	log  *slog.Logger
}

// Reload loads the head file again and swaps it in if it changed.
func (r *headReloader) Reload(reason string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.clf.HeadID()
	h, err := infer.LoadHead(r.eng, r.path, r.clf.FeatureSize())
	if err != nil {
		r.log.Error("new head refused; the current head keeps serving", "reason", reason, "head", r.path, "current", cur, "err", err)
		return "", fmt.Errorf("head %s refused, %s keeps serving: %w", r.path, cur, err)
	}
	if h.ID() == cur {
		_ = h.Close()
		r.log.Info("head unchanged", "reason", reason, "head", r.path, "id", cur)
		return "head " + cur + " unchanged", nil
	}
	old := r.clf.SwapHead(h)
	if err := old.Close(); err != nil {
		r.log.Warn("closing the previous head", "id", old.ID(), "err", err)
	}
	r.log.Info("head reloaded", "reason", reason, "head", r.path, "from", old.ID(), "to", h.ID(), "threshold", h.Threshold())
	return fmt.Sprintf("head %s -> %s", old.ID(), h.ID()), nil
}

// settle lets a head written in several steps finish before it is loaded; an
// atomic rename needs none, but costs only this delay.
const settle = 300 * time.Millisecond

// watch reloads on SIGHUP and when the head file changes, until ctx is done.
// It watches the folder, not the file: an install renames a new file over the
// old one, which a watch on the old inode would never see.
func (r *headReloader) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch model.head: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(r.path)); err != nil {
		return fmt.Errorf("watch model.head folder %s: %w", filepath.Dir(r.path), err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var due <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			_, _ = r.Reload("SIGHUP")
		case ev := <-w.Events:
			if filepath.Clean(ev.Name) == r.path && ev.Has(fsnotify.Create|fsnotify.Write|fsnotify.Rename) {
				due = time.After(settle)
			}
		case err := <-w.Errors:
			r.log.Warn("watching model.head", "err", err)
		case <-due:
			due = nil
			if _, err := os.Stat(r.path); err == nil { // a rename away is followed by the new file's create
				_, _ = r.Reload("head file changed")
			}
		}
	}
}
