package workflow

import (
	"context"
	"fmt"
	"math"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/install"
)

// gate scores the candidate and the installed head on the held-out samples
// (and on the gate set, when there is one), each at its own decision
// threshold, and installs the candidate if install.Decide lets it on both
// and, on the gate set, it catches as many fakes (within the margin).
func gate(ctx context.Context, held train.Dataset, candidate string, opts Options) (*Gate, error) {
	g := &Gate{Held: held.Len()}
	cand, inst, instErr, err := scoreHeads(ctx, held, candidate, opts)
	if err != nil {
		return nil, err
	}
	g.Candidate, g.Installed = cand, inst
	g.Decision = install.Decide(cand.AUC, aucOf(inst), instErr, opts.GateMargin)
	if g.Install && opts.GateSet != nil {
		cand, inst, instErr, err := scoreHeads(ctx, opts.GateSet, candidate, opts)
		if err != nil {
			return nil, fmt.Errorf("gate set: %w", err)
		}
		g.GateSet = &GateSet{Samples: opts.GateSet.Len(), Candidate: cand, Installed: inst}
		d := install.Decide(cand.AUC, aucOf(inst), instErr, opts.GateMargin)
		// A head may rank the gate set's fakes as well and still stop
		// catching them, its threshold moved by this camera's faces.
		if d.Install && inst != nil && cand.Recall < inst.Recall-opts.GateMargin {
			d.Install = false
			d.Reason = fmt.Sprintf("the candidate catches %.1f%% of its fakes at its threshold, the installed head %.1f%% (margin %g)",
				100*cand.Recall, 100*inst.Recall, opts.GateMargin)
		}
		if !d.Install {
			g.Decision = d
			g.Reason = "on the trusted gate set: " + d.Reason
		} else {
			g.Reason += "; on the trusted gate set: " + d.Reason
		}
	}
	if !g.Install || !opts.Install {
		return g, nil
	}
	if err := install.Install(candidate, opts.Head); err != nil {
		return nil, err
	}
	g.Replaced = true
	return g, nil
}

// scoreHeads evaluates the candidate and the installed head (opts.Head) on
// ds; instErr says why the installed head could not be scored (missing, or
// made for another backbone).
func scoreHeads(ctx context.Context, ds train.Dataset, candidate string, opts Options) (cand train.Metrics, inst *train.Metrics, instErr, err error) {
	labels := labelsOf(ds)
	score := func(h Head) (train.Metrics, error) {
		s, err := Scores(ctx, h, ds)
		h.Close()
		if err != nil {
			return train.Metrics{}, err
		}
		return train.Evaluate(labels, s, spec.DecisionThreshold(spec.NoThreshold, h.Threshold()))
	}
	c, err := opts.OpenHead(candidate)
	if err != nil {
		return cand, nil, nil, err
	}
	if cand, err = score(c); err != nil {
		return cand, nil, nil, err
	}
	cur, openErr := opts.OpenHead(opts.Head)
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
