// Package install decides whether a newly trained head may replace the
// installed one (the validation gate), replaces it atomically keeping the
// previous head, and rolls back.
package install

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"

	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/train"
)

// Holdout splits samples into the ones to train on and a held-out set of
// about frac of them, stratified by label and never splitting a group: fold
// one of a stratified grouped k-fold with k = round(1/frac).
func Holdout(labels []int, groups []string, frac float64, seed int64) (trainIdx, heldIdx []int, err error) {
	if !(frac > 0 && frac <= 0.5) {
		return nil, nil, fmt.Errorf("holdout fraction must be above 0 and at most 0.5, got %g", frac)
	}
	splits, err := train.StratifiedGroupKFold(labels, groups, max(2, int(math.Round(1/frac))), seed)
	if err != nil {
		return nil, nil, fmt.Errorf("holdout: %w", err)
	}
	return splits[0][0], splits[0][1], nil
}

// Decision is the gate's verdict on a candidate head.
type Decision struct {
	Install      bool    `json:"install"`
	CandidateAUC float64 `json:"-"` // JSON cannot hold NaN; callers report metrics with the AUCs
	InstalledAUC float64 `json:"-"` // NaN when the installed head could not be scored
	Margin       float64 `json:"margin"`
	Reason       string  `json:"reason"`
}

// Decide installs the candidate when its AUC on the held-out samples is not
// lower than the installed head's by more than margin, or when the installed
// head could not be scored (installedErr: missing, or made for another backbone).
func Decide(candidateAUC, installedAUC float64, installedErr error, margin float64) Decision {
	d := Decision{CandidateAUC: candidateAUC, InstalledAUC: installedAUC, Margin: margin}
	switch {
	case math.IsNaN(candidateAUC):
		d.Reason = "the candidate's AUC on the held-out samples is undefined (one class only)"
	case installedErr != nil:
		d.Install, d.InstalledAUC = true, math.NaN()
		d.Reason = fmt.Sprintf("the installed head cannot be scored (%v), so the candidate replaces it", installedErr)
	case math.IsNaN(installedAUC):
		d.Install = true
		d.Reason = "the installed head's AUC is undefined, so the candidate replaces it"
	case candidateAUC >= installedAUC-margin:
		d.Install = true
		d.Reason = fmt.Sprintf("candidate AUC %.4f >= installed AUC %.4f - margin %g", candidateAUC, installedAUC, margin)
	default:
		d.Reason = fmt.Sprintf("candidate AUC %.4f < installed AUC %.4f - margin %g", candidateAUC, installedAUC, margin)
	}
	return d
}

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
