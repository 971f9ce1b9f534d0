package gate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/train"
)

func TestDecide(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name               string
		cand, inst, margin float64
		instErr            error
		want               bool
		reason             string
	}{
		{"better", 0.80, 0.75, 0, nil, true, ">="},
		{"equal", 0.75, 0.75, 0, nil, true, ">="},
		{"worse", 0.74, 0.75, 0, nil, false, "<"},
		{"worse within margin", 0.74, 0.75, 0.02, nil, true, ">="},
		{"worse beyond margin", 0.72, 0.75, 0.02, nil, false, "<"},
		{"installed missing", 0.55, nan, 0, errors.New("no such file"), true, "cannot be scored"},
		{"installed undefined", 0.55, nan, 0, nil, true, "undefined"},
		{"candidate undefined", nan, 0.6, 0, nil, false, "undefined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.cand, tc.inst, tc.instErr, tc.margin)
			if d.Install != tc.want || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Decide(%g, %g, %v, %g) = %v %q, want %v and a reason with %q", tc.cand, tc.inst, tc.instErr, tc.margin, d.Install, d.Reason, tc.want, tc.reason)
			}
		})
	}
}

func TestHoldout(t *testing.T) {
	var labels []int
	var groups []string
	for g := range 100 { // 100 identities, 3 images each, 40% fake
		for range 3 {
			labels = append(labels, min(g%5/3, 1))
			groups = append(groups, fmt.Sprint("id", g))
		}
	}
	for _, frac := range []float64{0.2, 0.25, 0.5} {
		tr, held, err := Holdout(labels, groups, frac, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr)+len(held) != len(labels) {
			t.Fatalf("frac %g: %d + %d samples, want %d", frac, len(tr), len(held), len(labels))
		}
		if got := float64(len(held)) / float64(len(labels)); math.Abs(got-frac) > 0.05 {
			t.Errorf("frac %g: held out %.3f of the samples", frac, got)
		}
		inTrain := map[string]bool{}
		for _, i := range tr {
			inTrain[groups[i]] = true
		}
		fakes := 0
		for _, i := range held {
			if inTrain[groups[i]] {
				t.Fatalf("frac %g: group %s is on both sides", frac, groups[i])
			}
			fakes += labels[i]
		}
		if got := float64(fakes) / float64(len(held)); math.Abs(got-0.4) > 0.1 {
			t.Errorf("frac %g: %.2f of the held-out samples are fake, want about 0.4", frac, got)
		}
	}
	if _, _, err := Holdout(labels, groups, 0.9, 1); err == nil {
		t.Error("holdout 0.9 accepted")
	}
}

// mem is a dataset in memory: one feature a sample, one sample a group.
type mem struct {
	x      []float32
	labels []int
}

func (m *mem) Len() int           { return len(m.labels) }
func (m *mem) Dim() int           { return 1 }
func (m *mem) Label(i int) int    { return m.labels[i] }
func (m *mem) Group(i int) string { return fmt.Sprint(i) }
func (m *mem) Features(i int, dst []float32) error {
	dst[0] = m.x[i]
	return nil
}

// ramp is n samples, the first half real: feature i/n, so that a head
// scoring the feature ranks every fake above every real face.
func ramp(n int) *mem {
	m := &mem{}
	for i := range n {
		m.x = append(m.x, float32(i)/float32(n))
		m.labels = append(m.labels, min(2*i/n, 1))
	}
	return m
}

// slope is a head whose fake logit is w times the feature, at a threshold.
type slope struct {
	w, threshold float32
}

func (h slope) Logits(x []float32, n int, dst []float32) error {
	for i := range n {
		dst[2*i], dst[2*i+1] = 0, h.w*(x[i]-0.5)
	}
	return nil
}
func (h slope) Threshold() spec.Threshold { return spec.ThresholdOf(float64(h.threshold)) }
func (h slope) Close() error              { return nil }

// TestJudge: the candidate passes when it ranks the held-out samples as well
// as the installed head (or the installed head cannot be opened), and on the
// gate set must also catch as many fakes at its threshold.
func TestJudge(t *testing.T) {
	held, trusted := ramp(40), ramp(20)
	for _, tc := range []struct {
		name         string
		cand, inst   *slope // nil: the file cannot be opened
		gateSet      train.Dataset
		want         bool
		reason       string
		installedNil bool
	}{
		{name: "as good", cand: &slope{8, 0.5}, inst: &slope{8, 0.5}, want: true, reason: ">="},
		{name: "no installed head", cand: &slope{8, 0.5}, want: true, reason: "cannot be scored", installedNil: true},
		{name: "ranks backwards", cand: &slope{-8, 0.5}, inst: &slope{8, 0.5}, want: false, reason: "<"},
		{name: "gate set passes", cand: &slope{8, 0.5}, inst: &slope{8, 0.5}, gateSet: trusted, want: true, reason: "; on the trusted gate set: "},
		// Ranked as well, but its threshold lets every fake through.
		{name: "gate set fakes missed", cand: &slope{8, 0.99}, inst: &slope{8, 0.5}, gateSet: trusted, want: false,
			reason: "on the trusted gate set: the candidate catches 0.0% of its fakes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := func(path string) (Head, error) {
				h := map[string]*slope{"cand": tc.cand, "inst": tc.inst}[path]
				if h == nil {
					return nil, errors.New("no such file")
				}
				return *h, nil
			}
			r, err := Judge(context.Background(), held, "cand", Options{Installed: "inst", Margin: 0.02, GateSet: tc.gateSet, Open: open})
			if err != nil {
				t.Fatal(err)
			}
			if r.Install != tc.want || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("install %v %q, want %v and a reason with %q", r.Install, r.Reason, tc.want, tc.reason)
			}
			if r.Held != 40 || (r.Installed == nil) != tc.installedNil || (r.GateSet != nil) != (tc.gateSet != nil) {
				t.Errorf("result %+v", r)
			}
		})
	}
	if _, err := Judge(context.Background(), held, "missing", Options{Open: func(string) (Head, error) { return nil, errors.New("gone") }}); err == nil {
		t.Error("a candidate that cannot be opened was judged")
	}
}
