package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// trainLockFile is held by a running `deepfaked train` in the state folder:
// the nightly timer, a person at a terminal and the page's train button all
// run that command, and two trainings at once would race to install.
const trainLockFile = "train.lock"

// lockTraining takes the state folder's training lock without waiting; the
// returned func releases it. The lock is a flock: it goes with the process.
func lockTraining(stateDir string) (func(), error) {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	name := filepath.Join(stateDir, trainLockFile)
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
