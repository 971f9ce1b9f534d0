package workflow

import (
	"context"

	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/gate"
	"github.com/deepfaked/deepfaked/train/install"
)

// runGate asks the gate about the candidate head file and, when it passes
// and opts.Install, installs it.
func runGate(ctx context.Context, held train.Dataset, candidate string, opts Options) (*Gate, error) {
	r, err := gate.Judge(ctx, held, candidate, gate.Options{Installed: opts.Head, Margin: opts.GateMargin,
		GateSet: opts.GateSet, Open: opts.OpenHead})
	if err != nil {
		return nil, err
	}
	g := &Gate{Result: *r, CompareOnly: opts.Compare, Over: opts.Head}
	if !g.Install || !opts.Install {
		return g, nil
	}
	if err := install.Install(candidate, opts.Head, opts.Signing); err != nil {
		return nil, err
	}
	g.Replaced = true
	return g, nil
}
