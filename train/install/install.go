// Package install replaces the installed head atomically, keeping the
// previous one, and rolls back; train/gate decides whether a head may be
// installed.
package install

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"aead.dev/minisign"

	"github.com/deepfaked/deepfaked/infer/modelsig"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// Signing is what an install does about signatures (model.trusted_keys,
// train.signing_key). With Key, the head is signed with it as it is
// installed (the candidate file is left as it is); with Keys, only a head
// signed by one of them is installed or rolled back to, as the daemon only
// loads such a head. The zero value installs any head, unsigned.
type Signing struct {
	Keys modelsig.Keys
	Key  *minisign.PrivateKey
	// Release names what Key signs, in the signature's trusted comment.
	Release string
}

// prepare signs data (from the file path) when s says so and checks it
// against s.Keys.
func (s Signing) prepare(path string, data []byte) ([]byte, error) {
	if s.Key != nil {
		signed, err := modelsig.Sign(data, *s.Key, modelsig.Head, s.Release)
		if err != nil {
			return nil, fmt.Errorf("sign %s: %w", path, err)
		}
		data = signed
	}
	if _, err := modelsig.CheckBytes(path, data, s.Keys, modelsig.Head); err != nil {
		return nil, err
	}
	return data, nil
}

// History is how many replaced heads Install keeps for Rollback.
const History = 10

// historyPath is the n-th head kept (1 the oldest, the highest the newest).
func historyPath(head string, n int) string { return head + ".prev." + strconv.Itoa(n) }

// legacyPath is where earlier releases kept the one head they replaced.
func legacyPath(head string) string { return head + ".prev" }

// pendingPath holds a head that passed the gate until it replaces head.
func pendingPath(head string) string { return head + ".new" }

// history lists the kept heads' numbers, oldest first.
func history(head string) ([]int, error) {
	dir, base := filepath.Split(head)
	ents, err := os.ReadDir(filepath.Clean(dir + "."))
	if err != nil {
		return nil, fmt.Errorf("head history beside %s: %w", head, err)
	}
	var ns []int
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base+".prev.")
		if n, err := strconv.Atoi(rest); ok && err == nil && n > 0 && strconv.Itoa(n) == rest {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// Kept is how many replaced heads Rollback can still put back, newest first.
func Kept(head string) (int, error) {
	ns, err := history(head)
	return len(ns), err
}

// Install replaces head with the file candidate so that a reader (the daemon
// reloading its model) sees the old head or the new one, whole, and keeps
// the replaced head for Rollback (the newest History of them). A power cut
// at any point leaves either the old head or the new one with the history
// that goes with it, once Recover has run (Install and Rollback run it
// first): the candidate is first written whole beside head (pendingPath),
// then the current head is added to the history, then the candidate is
// renamed over head; a pending candidate found later is finished the same way.
// s signs the head and refuses one no trusted key signed.
func Install(candidate, head string, s Signing) error {
	if err := Recover(head); err != nil {
		return err
	}
	data, err := os.ReadFile(candidate)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if data, err = s.prepare(candidate, data); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := atomicfile.Write(pendingPath(head), data, 0o644); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return finish(head)
}

// Recover finishes an install or a rollback a crash interrupted, moves an
// earlier release's <head>.prev into the history, and removes the temporary
// files interrupted writes left beside head.
func Recover(head string) error {
	ns, err := history(head)
	if err != nil {
		return err
	}
	paths := []string{head, legacyPath(head), pendingPath(head)}
	for _, n := range ns {
		paths = append(paths, historyPath(head, n))
	}
	paths = append(paths, historyPath(head, next(ns)))
	var errs []error
	for _, p := range paths {
		errs = append(errs, atomicfile.RemoveTemps(p))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("install: clean up beside %s: %w", head, err)
	}
	if _, err := os.Stat(legacyPath(head)); err == nil {
		if err := atomicfile.Rename(legacyPath(head), historyPath(head, next(ns))); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	if _, err := os.Stat(pendingPath(head)); err == nil {
		return finish(head)
	}
	// A rollback that wrote the head but had not yet removed the history's
	// newest (the same head) is finished by removing it.
	if ns, err = history(head); err != nil || len(ns) == 0 {
		return err
	}
	top := historyPath(head, ns[len(ns)-1])
	if same, err := sameFile(head, top); err != nil || !same {
		return err
	}
	if err := atomicfile.Remove(top); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// next is the number the next kept head gets.
func next(ns []int) int {
	if len(ns) == 0 {
		return 1
	}
	return ns[len(ns)-1] + 1
}

func sameFile(a, b string) (bool, error) {
	x, err := os.ReadFile(a)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	return bytes.Equal(x, y), nil
}

// finish adds the current head to the history and renames the pending head
// over it, then drops the oldest kept heads beyond History. Run again after
// a crash at any step, it ends the same.
func finish(head string) error {
	ns, err := history(head)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(head)
	switch {
	case errors.Is(err, fs.ErrNotExist): // the first install: nothing to keep
	case err != nil:
		return fmt.Errorf("install: %w", err)
	default:
		// After a crash the head may already be the history's newest.
		kept := len(ns) > 0
		if kept {
			kept, err = sameFile(head, historyPath(head, ns[len(ns)-1]))
			if err != nil {
				return err
			}
		}
		if !kept {
			if err := atomicfile.Write(historyPath(head, next(ns)), old, 0o644); err != nil {
				return fmt.Errorf("install: keep the replaced head: %w", err)
			}
			ns = append(ns, next(ns))
		}
	}
	if err := atomicfile.Rename(pendingPath(head), head); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	for len(ns) > History {
		if err := atomicfile.Remove(historyPath(head, ns[0])); err != nil {
			return fmt.Errorf("install: drop the oldest kept head: %w", err)
		}
		ns = ns[1:]
	}
	return nil
}

// ErrNothingToUndo is Rollback's error when no replaced head is kept.
var ErrNothingToUndo = errors.New("nothing to undo")

// Rollback undoes the newest install: the head it replaced is written over
// head (atomically) and leaves the history, so a second Rollback goes one
// install further back; with none left it says there is nothing to undo.
// The head rolled back from is not kept. With s.Keys, a kept head no
// trusted key signed is not put back (a key the device no longer trusts).
func Rollback(head string, s Signing) error {
	if err := Recover(head); err != nil {
		return err
	}
	ns, err := history(head)
	if err != nil {
		return err
	}
	if len(ns) == 0 {
		return fmt.Errorf("rollback: %w: no replaced head is kept beside %s", ErrNothingToUndo, head)
	}
	top := historyPath(head, ns[len(ns)-1])
	older, err := os.ReadFile(top)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if _, err := modelsig.CheckBytes(top, older, s.Keys, modelsig.Head); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if err := atomicfile.Write(head, older, 0o644); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if err := atomicfile.Remove(top); err != nil {
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
