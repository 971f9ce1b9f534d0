// Package gate decides whether a newly trained head may replace the
// installed one: the training data's hold-out split, both heads scored on it
// and on the operator's trusted gate set, and the decision with its reason.
// train/install carries the decision out.
package gate

import (
	"context"
	"fmt"
	"math"

	"github.com/deepfaked/deepfaked/infer/spec"
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

// Head is an exported head as the daemon runs it (infer.Head).
type Head interface {
	// Logits runs n samples' features and writes n×2 logits [real, fake].
	Logits(features []float32, n int, dst []float32) error
	// Threshold is the threshold calibrated and stored with the head, if any.
	Threshold() spec.Threshold
	Close() error
}

// Opener opens an exported head file (infer.LoadHead).
type Opener func(path string) (Head, error)

// Options are the gate's inputs besides the held-out samples and the candidate.
type Options struct {
	// Installed is the installed head's path: the head the candidate must
	// not be worse than.
	Installed string
	// Margin is how much lower the candidate's AUC (and, on the gate set,
	// its share of fakes caught) may be.
	Margin float64
	// GateSet is the operator's trusted labelled set, nil for none.
	GateSet train.Dataset
	Open    Opener
}

// Result is the gate's outcome.
type Result struct {
	Decision
	Held      int            `json:"held_out"`
	Candidate train.Metrics  `json:"candidate"`
	Installed *train.Metrics `json:"installed_head,omitempty"` // absent when it could not be scored
	// On the trusted gate set (Options.GateSet), when there is one.
	GateSet *Set `json:"gate_set,omitempty"`
}

// Set is both heads' metrics on the operator's trusted labelled set.
type Set struct {
	Samples   int            `json:"samples"`
	Candidate train.Metrics  `json:"candidate"`
	Installed *train.Metrics `json:"installed_head,omitempty"`
}

// Judge scores the candidate head file and the installed head on the
// held-out samples (and on the gate set, when there is one), each at its own
// decision threshold. The candidate passes if Decide lets it on both and, on
// the gate set, it catches as many fakes (within the margin).
func Judge(ctx context.Context, held train.Dataset, candidate string, o Options) (*Result, error) {
	r := &Result{Held: held.Len()}
	cand, inst, instErr, err := scoreHeads(ctx, held, candidate, o)
	if err != nil {
		return nil, err
	}
	r.Candidate, r.Installed = cand, inst
	r.Decision = Decide(cand.AUC, aucOf(inst), instErr, o.Margin)
	if !r.Install || o.GateSet == nil {
		return r, nil
	}
	cand, inst, instErr, err = scoreHeads(ctx, o.GateSet, candidate, o)
	if err != nil {
		return nil, fmt.Errorf("gate set: %w", err)
	}
	r.GateSet = &Set{Samples: o.GateSet.Len(), Candidate: cand, Installed: inst}
	d := Decide(cand.AUC, aucOf(inst), instErr, o.Margin)
	// A head may rank the gate set's fakes as well and still stop catching
	// them, its threshold moved by this camera's faces.
	if d.Install && inst != nil && cand.Recall < inst.Recall-o.Margin {
		d.Install = false
		d.Reason = fmt.Sprintf("the candidate catches %.1f%% of its fakes at its threshold, the installed head %.1f%% (margin %g)",
			100*cand.Recall, 100*inst.Recall, o.Margin)
	}
	if !d.Install {
		r.Decision = d
		r.Reason = "on the trusted gate set: " + d.Reason
	} else {
		r.Reason += "; on the trusted gate set: " + d.Reason
	}
	return r, nil
}

// scoreHeads evaluates the candidate and the installed head (o.Installed) on
// ds; instErr says why the installed head could not be scored (missing, or
// made for another backbone).
func scoreHeads(ctx context.Context, ds train.Dataset, candidate string, o Options) (cand train.Metrics, inst *train.Metrics, instErr, err error) {
	labels := train.Labels(ds)
	score := func(h Head) (train.Metrics, error) {
		s, err := Scores(ctx, h, ds)
		h.Close()
		if err != nil {
			return train.Metrics{}, err
		}
		return train.Evaluate(labels, s, spec.DecisionThreshold(spec.NoThreshold, h.Threshold()))
	}
	c, err := o.Open(candidate)
	if err != nil {
		return cand, nil, nil, err
	}
	if cand, err = score(c); err != nil {
		return cand, nil, nil, err
	}
	cur, openErr := o.Open(o.Installed)
	if openErr != nil {
		return cand, nil, openErr, nil
	}
	m, err := score(cur)
	if err != nil {
		return cand, nil, nil, err
	}
	return cand, &m, nil, nil
}

func aucOf(m *train.Metrics) float64 {
	if m == nil {
		return math.NaN()
	}
	return m.AUC
}

// Scores are head's fake probabilities for every sample of ds, in batches.
func Scores(ctx context.Context, head Head, ds train.Dataset) ([]float64, error) {
	const batch = 64
	d := ds.Dim()
	x := make([]float32, batch*d)
	logits := make([]float32, 2*batch)
	scores := make([]float64, ds.Len())
	for s := 0; s < ds.Len(); s += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(batch, ds.Len()-s)
		for k := range n {
			if err := ds.Features(s+k, x[k*d:(k+1)*d]); err != nil {
				return nil, err
			}
		}
		if err := head.Logits(x[:n*d], n, logits[:2*n]); err != nil {
			return nil, err
		}
		for k := range n {
			scores[s+k] = spec.PFake(logits[2*k], logits[2*k+1])
		}
	}
	return scores, nil
}
