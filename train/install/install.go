// Package install replaces the installed head atomically, keeping the
// previous one, and rolls back; train/gate decides whether a head may be
// installed.
package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// PrevPath is where Install keeps the head it replaced.
func PrevPath(head string) string { return head + ".prev" }

// pendingPath holds a head that passed the gate until it replaces head.
func pendingPath(head string) string { return head + ".new" }

// Install replaces head with the file candidate so that a reader (the daemon
// reloading its model) sees the old head or the new one, whole, and keeps
// the replaced head at PrevPath(head) for Rollback. A power cut at any point
// leaves either the old pair (head, previous) or the new one, once Recover
// has run (Install and Rollback run it first): the candidate is first written
// whole beside head (pendingPath), then the current head is copied to the
// previous one, then the candidate is renamed over head; a pending candidate
// found later is finished the same way.
func Install(candidate, head string) error {
	if err := Recover(head); err != nil {
		return err
	}
	data, err := os.ReadFile(candidate)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := atomicfile.Write(pendingPath(head), data, 0o644); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return finish(head)
}

// Recover finishes an install a crash interrupted and removes the temporary
// files interrupted writes left beside head and its previous version.
func Recover(head string) error {
	var errs []error
	for _, p := range []string{head, PrevPath(head), pendingPath(head)} {
		errs = append(errs, atomicfile.RemoveTemps(p))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("install: clean up beside %s: %w", head, err)
	}
	if _, err := os.Stat(pendingPath(head)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return finish(head)
}

// finish moves the current head to the previous one and the pending head
// over it. Run again after a crash at any step, it ends the same.
func finish(head string) error {
	old, err := os.ReadFile(head)
	switch {
	case err == nil:
		if err := atomicfile.Write(PrevPath(head), old, 0o644); err != nil {
			return fmt.Errorf("install: keep the previous head: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("install: %w", err)
	}
	if err := atomicfile.Rename(pendingPath(head), head); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// Rollback swaps head and PrevPath(head), each atomically: the previous head
// is installed and the one it replaces becomes the previous one, so a second
// Rollback undoes the first.
func Rollback(head string) error {
	if err := Recover(head); err != nil {
		return err
	}
	prev := PrevPath(head)
	older, err := os.ReadFile(prev)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rollback: no previous head at %s (nothing was installed over %s)", prev, head)
	}
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	cur, err := os.ReadFile(head)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rollback: %w", err)
	}
	if err := atomicfile.Write(head, older, 0o644); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if cur == nil {
		return os.Remove(prev)
	}
	if err := atomicfile.Write(prev, cur, 0o644); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// LockFile is held in the state folder by a running `deepfaked train`: the
// nightly timer, a person at a terminal and the page's train button all run
// that command, and two trainings at once would race to install.
const LockFile = "train.lock"

// Lock takes the state folder's training lock without waiting; the returned
// func releases it. The lock is a flock: it goes with the process.
func Lock(stateDir string) (func(), error) {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	name := filepath.Join(stateDir, LockFile)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("training lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another training is running on %s (it holds %s); one at a time", stateDir, name)
		}
		return nil, fmt.Errorf("training lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}
