package workflow

import (
	"context"
	"math"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/install"
)

// gate scores the candidate and the installed head on the held-out samples,
// each at its own decision threshold, and installs the candidate if
// install.Decide lets it.
func gate(ctx context.Context, held train.Dataset, candidate string, opts Options) (*Gate, error) {
	labels := labelsOf(held)
	g := &Gate{Held: held.Len()}
	cand, err := opts.OpenHead(candidate)
	if err != nil {
		return nil, err
	}
	cs, err := Scores(ctx, cand, held)
	cand.Close()
	if err != nil {
		return nil, err
	}
	if g.Candidate, err = train.Evaluate(labels, cs, spec.DecisionThreshold(spec.NoThreshold, cand.Threshold())); err != nil {
		return nil, err
	}
	installedAUC, installedErr := math.NaN(), error(nil)
	if cur, err := opts.OpenHead(opts.Head); err != nil {
		installedErr = err // missing, or made for another backbone
	} else {
		is, err := Scores(ctx, cur, held)
		cur.Close()
		if err != nil {
			return nil, err
		}
		m, err := train.Evaluate(labels, is, spec.DecisionThreshold(spec.NoThreshold, cur.Threshold()))
		if err != nil {
			return nil, err
		}
		g.Installed, installedAUC = &m, m.AUC
	}
	g.Decision = install.Decide(g.Candidate.AUC, installedAUC, installedErr, opts.GateMargin)
	if !g.Install {
		return g, nil
	}
	if err := install.Install(candidate, opts.Head); err != nil {
		return nil, err
	}
	g.Replaced = true
	return g, nil
}
