package workflow

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/gate"
)

// mixSteps: Run tries the new head's weights 0, 1/mixSteps, ..., 1 when it
// mixes the new head with the installed one (1 is the new head alone).
const mixSteps = 10

// mixGainShare is, without a reference set, the share of the best
// out-of-fold gain over the installed head that the least-moved mix must
// reach: the head moves from the installed one no further than this data
// asks, since nothing else says what moving further would forget.
const mixGainShare = 0.9

// MixReport is how the exported head mixes the head trained on this data
// with the installed one: logits (1−Alpha)·installed + Alpha·new.
type MixReport struct {
	Alpha float64 `json:"alpha"`
	// Rule says how Alpha was chosen.
	Rule       string         `json:"rule"`
	Candidates []MixCandidate `json:"candidates"`
}

// MixCandidate is one weight's out-of-fold AUC on the data, and its AUC on
// the reference (the trusted gate set) when there is one.
type MixCandidate struct {
	Alpha        float64  `json:"alpha"`
	AUC          float64  `json:"out_of_fold_auc"`
	ReferenceAUC *float64 `json:"reference_auc,omitempty"`
}

// mixWithInstalled picks the weight of the new head in a mix with the
// installed one. The data's out-of-fold logits mix exactly like the heads
// (each is an affine map), so every weight is scored on predictions no head
// in the mix trained on: the new head's out-of-fold logits and the installed
// head's, which never saw this data. With a reference set (deepfakes the
// operator trusts) the weight is the best on the data among those that keep
// the reference's AUC within margin of the installed head's; without one,
// the least that reaches mixGainShare of the best gain on the data.
func mixWithInstalled(ctx context.Context, ds train.Dataset, oof []float64, newHead *train.Head, installed *train.Head,
	ref train.Dataset, margin float64) (*MixReport, []float64, error) {
	labels := train.Labels(ds)
	instL, err := logitDiffs(ctx, installed, ds)
	if err != nil {
		return nil, nil, err
	}
	newL := make([]float64, len(oof))
	for i, p := range oof {
		p = min(max(p, 1e-12), 1-1e-12)
		newL[i] = math.Log(p / (1 - p))
	}
	var refLabels []int
	var refInst, refNew []float64
	if ref != nil {
		refLabels = train.Labels(ref)
		if refInst, err = logitDiffs(ctx, installed, ref); err != nil {
			return nil, nil, fmt.Errorf("reference: %w", err)
		}
		if refNew, err = logitDiffs(ctx, newHead, ref); err != nil {
			return nil, nil, fmt.Errorf("reference: %w", err)
		}
	}
	mixed := func(a float64, inst, nw []float64) []float64 {
		s := make([]float64, len(inst))
		for i := range s {
			s[i] = 1 / (1 + math.Exp(-((1-a)*inst[i] + a*nw[i])))
		}
		return s
	}
	r := &MixReport{}
	best := -1
	for k := range mixSteps + 1 {
		a := float64(k) / mixSteps
		c := MixCandidate{Alpha: a, AUC: train.AUC(labels, mixed(a, instL, newL))}
		if ref != nil {
			v := train.AUC(refLabels, mixed(a, refInst, refNew))
			c.ReferenceAUC = &v
		}
		r.Candidates = append(r.Candidates, c)
	}
	if ref != nil {
		floor := *r.Candidates[0].ReferenceAUC - margin
		for i, c := range r.Candidates {
			if *c.ReferenceAUC >= floor && (best < 0 || c.AUC > r.Candidates[best].AUC) {
				best = i
			}
		}
		r.Rule = fmt.Sprintf("the best out-of-fold AUC among the weights that keep the reference's AUC at least %.4f (the installed head's %.4f less train.gate_margin)",
			floor, *r.Candidates[0].ReferenceAUC)
	} else {
		top := r.Candidates[0].AUC
		for _, c := range r.Candidates {
			top = max(top, c.AUC)
		}
		want := r.Candidates[0].AUC + mixGainShare*(top-r.Candidates[0].AUC)
		for i, c := range r.Candidates {
			if c.AUC >= want {
				best = i
				break
			}
		}
		r.Rule = fmt.Sprintf("no reference set (train.gate_set): the least weight whose out-of-fold AUC reaches %.4f, %.0f%% of the way from the installed head's %.4f to the best %.4f",
			want, 100*mixGainShare, r.Candidates[0].AUC, top)
	}
	r.Alpha = r.Candidates[best].Alpha
	return r, mixed(r.Alpha, instL, newL), nil
}

// Mixed is Report.Mix: the mix the exported head is, or why the new head
// is exported alone.
type Mixed struct {
	*MixReport
	// OutOfFold is the exported mix's out-of-fold metrics at its threshold.
	OutOfFold train.Metrics `json:"out_of_fold"`
	Skipped   string        `json:"skipped,omitempty"`
	scores    []float64
}

// mix is Run's Options.Mix: the new head mixed with the installed one, or
// the new head alone with the reason.
func mix(ctx context.Context, ds train.Dataset, cv *train.CVResult, newHead *train.Head, opts Options) (*train.Head, *Mixed, error) {
	h, err := opts.OpenHead(opts.Head)
	if err != nil {
		return newHead, &Mixed{Skipped: fmt.Sprintf("the installed head %s: %v", opts.Head, err)}, nil
	}
	installed, err := linearHead(h, ds.Dim(), uint64(opts.Train.Seed))
	h.Close()
	if err != nil {
		return newHead, &Mixed{Skipped: fmt.Sprintf("the installed head %s: %v", opts.Head, err)}, nil
	}
	rep, scores, err := mixWithInstalled(ctx, ds, cv.Scores, newHead, installed, opts.GateSet, opts.GateMargin)
	if err != nil {
		return nil, nil, err
	}
	head, err := train.Mix([]*train.Head{installed, newHead}, []float64{1 - rep.Alpha, rep.Alpha})
	if err != nil {
		return nil, nil, err
	}
	labels := train.Labels(ds)
	m, err := train.Evaluate(labels, scores, train.ChooseThreshold(labels, scores))
	if err != nil {
		return nil, nil, err
	}
	return head, &Mixed{MixReport: rep, OutOfFold: m, scores: scores}, nil
}

// logitDiffs are the head's fake-minus-real logits of every sample of ds.
func logitDiffs(ctx context.Context, h *train.Head, ds train.Dataset) ([]float64, error) {
	p, err := h.Scores(ctx, ds, allIdx(ds.Len()))
	if err != nil {
		return nil, err
	}
	for i, v := range p {
		v = min(max(v, 1e-12), 1-1e-12)
		p[i] = math.Log(v / (1 - v))
	}
	return p, nil
}

// affineProbes is how many random feature vectors linearHead checks the
// probed map on.
const affineProbes = 4

// linearHead reads an exported head as the affine map it is (Flatten,
// BatchNorm, Dropout and Linear are, at inference): its logits of the zero
// vector are the bias, and of each unit vector the bias plus that column.
// Probing through the runtime reads any exported affine head without
// parsing its graph; a head that is not affine (its logits of random
// features differ from the map's) is refused.
func linearHead(h gate.Head, d int, seed uint64) (*train.Head, error) {
	const batch = 256
	x := make([]float32, batch*d)
	out := make([]float32, batch*train.NumClasses)
	b := make([]float32, train.NumClasses)
	if err := h.Logits(x[:d], 1, b); err != nil {
		return nil, err
	}
	w := make([]float32, train.NumClasses*d)
	for s := 0; s < d; s += batch {
		n := min(batch, d-s)
		clear(x[:n*d])
		for k := range n {
			x[k*d+s+k] = 1
		}
		if err := h.Logits(x[:n*d], n, out[:n*train.NumClasses]); err != nil {
			return nil, err
		}
		for k := range n {
			for c := range train.NumClasses {
				w[c*d+s+k] = out[k*train.NumClasses+c] - b[c]
			}
		}
	}
	lin, err := train.Affine(d, w, b)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x70726f6265))
	probe := x[:affineProbes*d]
	for i := range probe {
		probe[i] = float32(rng.ExpFloat64()) // non-negative, like features after a ReLU
	}
	want := out[:affineProbes*train.NumClasses]
	if err := h.Logits(probe, affineProbes, want); err != nil {
		return nil, err
	}
	got := make([]float32, len(want))
	if err := lin.Logits(probe, affineProbes, got); err != nil {
		return nil, err
	}
	for i := range got {
		if diff := math.Abs(float64(got[i] - want[i])); diff > 1e-3*(1+math.Abs(float64(want[i]))) {
			return nil, fmt.Errorf("the head is not an affine map of its features (a logit of random features is %.4g, the probed map's %.4g)", want[i], got[i])
		}
	}
	return lin, nil
}
