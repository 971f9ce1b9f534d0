package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/features"
	"github.com/deepfaked/deepfaked/train/gate"
	"github.com/deepfaked/deepfaked/train/install"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// featureShape is the made-up backbone's: 32 features per face.
var featureShape = []int{8, 2, 2}

const inputSize = 64

// mem is a dataset in memory.
type mem struct {
	d      int
	x      []float32 // n×d
	labels []int
	groups []string
}

func (m *mem) Len() int           { return len(m.labels) }
func (m *mem) Dim() int           { return m.d }
func (m *mem) Label(i int) int    { return m.labels[i] }
func (m *mem) Group(i int) string { return m.groups[i] }
func (m *mem) Features(i int, dst []float32) error {
	copy(dst, m.x[i*m.d:(i+1)*m.d])
	return nil
}

// data makes n samples in groups of 4 of one class; the first 4 features
// carry the class with the given strength, the rest are noise.
func data(n int, signal float64, seed uint64) *mem { return dataOn(n, signal, seed, 0) }

// dataOn is data with the class in features from..from+3: another camera,
// on which another cue gives the fakes away.
func dataOn(n int, signal float64, seed uint64, from int) *mem {
	d := 32
	rng := rand.New(rand.NewPCG(seed, 2))
	m := &mem{d: d, x: make([]float32, n*d)}
	for i := range n {
		label := (i / 4) % 2
		m.labels = append(m.labels, label)
		m.groups = append(m.groups, fmt.Sprintf("g%03d", i/4))
		for j := range d {
			v := rng.NormFloat64()
			if j >= from && j < from+4 && label == train.Fake {
				v += signal
			}
			m.x[i*d+j] = float32(v)
		}
	}
	return m
}

func quick() train.Config {
	return train.Config{LR: 1e-2, L1: 0, WeightDecay: 1e-2, Dropout: 0, BatchSize: 16, Epochs: 4, Patience: 2, Folds: 2, Seed: 1, ClassWeights: true}
}

// newEngine is a real ONNX Runtime engine that opens heads as the daemon does.
func newEngine(t *testing.T) (*engine.Engine, func(path string) (gate.Head, error)) {
	t.Helper()
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng, func(path string) (gate.Head, error) { return infer.LoadHead(eng, path, 32) }
}

// exportHead writes a head: trained on ds with cfg, or untrained when cfg.Epochs is 0.
func exportHead(t *testing.T, path string, ds train.Dataset, cfg train.Config, threshold float64) {
	t.Helper()
	h := train.NewHead(ds.Dim(), 7)
	if cfg.Epochs > 0 {
		idx := make([]int, ds.Len())
		for i := range idx {
			idx[i] = i
		}
		r, err := train.Fit(context.Background(), ds, idx, nil, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		h = r.Head
	}
	if err := h.ExportONNX(path, train.ExportInfo{InputSize: inputSize, FeatureShape: featureShape, Threshold: threshold, TrainedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func options(t *testing.T, open func(string) (gate.Head, error)) workflow.Options {
	dir := t.TempDir()
	return workflow.Options{Train: quick(), Out: filepath.Join(dir, "out"),
		Backbone: workflow.Backbone{Path: "bb.onnx", ID: "bb0123456789", InputSize: inputSize, FeatureShape: featureShape, Features: 32},
		Source:   workflow.Source{Dir: "data", Crop: dataset.CropNone, Extracted: 200},
		Holdout:  0.25, Head: filepath.Join(dir, "installed", "head.onnx"), OpenHead: open}
}

func TestRun(t *testing.T) {
	ds := data(200, 2, 1)
	_, open := newEngine(t)
	for _, tc := range []struct {
		name      string
		install   bool
		installed func(t *testing.T, path string) // the head there before Run; nil: none
		train     func(c *train.Config)
		replaced  bool
		reason    string
		// installedThreshold is the threshold the gate scored the installed head at.
		installedThreshold float64
	}{
		{name: "no gate"},
		{name: "gate passes over an untrained head", install: true, replaced: true, reason: "candidate AUC",
			installed: func(t *testing.T, p string) { exportHead(t, p, ds, train.Config{}, 0.3) }, installedThreshold: 0.3},
		{name: "a head's stored threshold 0 is used, not 0.5", install: true, replaced: true, reason: "candidate AUC",
			installed: func(t *testing.T, p string) { exportHead(t, p, ds, train.Config{}, 0) }, installedThreshold: 0},
		{name: "gate refuses an untrained candidate", install: true, replaced: false, reason: "candidate AUC",
			installed: func(t *testing.T, p string) { exportHead(t, p, ds, quick(), 0.5) }, installedThreshold: 0.5,
			train: func(c *train.Config) { c.LR, c.Epochs = 1e-9, 1 }},
		{name: "no installed head", install: true, replaced: true, reason: "cannot be scored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := options(t, open)
			opts.Install = tc.install
			if tc.train != nil {
				tc.train(&opts.Train)
			}
			if err := os.MkdirAll(filepath.Dir(opts.Head), 0o755); err != nil {
				t.Fatal(err)
			}
			var before []byte
			if tc.installed != nil {
				tc.installed(t, opts.Head)
				before, _ = os.ReadFile(opts.Head)
			}
			held, steps := 0, 0
			opts.HeldOut = func(h, total int) {
				if total != ds.Len() {
					t.Errorf("held out %d of %d, want of %d", h, total, ds.Len())
				}
				held = h
			}
			opts.Progress = func(train.Progress) { steps++ }
			r, err := workflow.Run(t.Context(), ds, opts)
			if err != nil {
				t.Fatal(err)
			}
			if steps == 0 {
				t.Error("no progress reported")
			}
			var table strings.Builder
			if err := r.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(table.String(), "fold 2") || !strings.Contains(table.String(), "out-of-fold") ||
				strings.Contains(table.String(), "held-out new") != tc.install {
				t.Errorf("table:\n%s", table.String())
			}
			for _, f := range []string{workflow.HeadFile, workflow.MetricsFile, workflow.ConfusionFile, workflow.ROCFile} {
				if st, err := os.Stat(filepath.Join(opts.Out, f)); err != nil || st.Size() == 0 {
					t.Errorf("%s: %v", f, err)
				}
			}
			if r.Data.Real != 100 || r.Data.Fake != 100 || r.Data.Groups != 50 || len(r.Data.SHA256) != 64 || r.Data.Labels != "folders" {
				t.Errorf("data %+v", r.Data)
			}
			if len(r.CV.Folds) != 2 || r.CV.OutOfFold.N != ds.Len()-held || r.Final.Samples != ds.Len()-held {
				t.Errorf("trained on %d (cv %d), want %d", r.Final.Samples, r.CV.OutOfFold.N, ds.Len()-held)
			}
			// The exported head is what the daemon loads, with the calibrated threshold.
			h, err := open(r.Final.Head)
			if err != nil {
				t.Fatal(err)
			}
			if th, ok := h.Threshold().Get(); !ok || th != r.CV.Threshold {
				t.Errorf("exported threshold %v %v, want %g", th, ok, r.CV.Threshold)
			}
			h.Close()
			var onDisk map[string]json.RawMessage
			b, _ := os.ReadFile(filepath.Join(opts.Out, workflow.MetricsFile))
			if err := json.Unmarshal(b, &onDisk); err != nil {
				t.Fatal(err)
			}
			if _, ok := onDisk["gate"]; ok != tc.install {
				t.Errorf("metrics.json has a gate: %v, want %v", ok, tc.install)
			}
			if !tc.install {
				if r.Gate != nil || held != 0 {
					t.Errorf("gate %+v, held %d without --install", r.Gate, held)
				}
				return
			}
			g := r.Gate
			if held == 0 || g.Held != held || g.Install != tc.replaced || g.Replaced != tc.replaced || !strings.Contains(g.Reason, tc.reason) {
				t.Fatalf("gate %+v (held %d), want replaced %v for %q", g, held, tc.replaced, tc.reason)
			}
			after, _ := os.ReadFile(opts.Head)
			cand, _ := os.ReadFile(r.Final.Head)
			kept, _ := install.Kept(opts.Head)
			switch {
			case tc.replaced && !bytes.Equal(after, cand):
				t.Error("the candidate was not installed")
			case tc.replaced && before != nil && kept != 1:
				t.Errorf("%d heads kept for rollback, want the replaced one", kept)
			case !tc.replaced && (!bytes.Equal(after, before) || kept != 0):
				t.Error("a refused candidate touched the installed head")
			}
			if tc.replaced && before != nil {
				if err := install.Rollback(opts.Head, opts.Signing); err != nil {
					t.Fatal(err)
				}
				if back, _ := os.ReadFile(opts.Head); !bytes.Equal(back, before) {
					t.Error("rollback did not put back the replaced head")
				}
			}
			if tc.installed == nil {
				if g.Installed != nil {
					t.Errorf("a missing head was scored: %+v", g.Installed)
				}
				return
			}
			if g.Installed == nil || g.Installed.Threshold != tc.installedThreshold {
				t.Errorf("installed head scored at %+v, want threshold %g", g.Installed, tc.installedThreshold)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	_, open := newEngine(t)
	oneClass := data(40, 2, 3)
	for i := range oneClass.labels {
		oneClass.labels[i] = train.Real
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		ds     train.Dataset
		ctx    context.Context
		change func(o *workflow.Options)
		want   string
		is     error
	}{
		{name: "one class", ds: oneClass, want: "40 real and 0 fake images are left: both classes are needed"},
		{name: "cancelled", ds: data(100, 2, 4), ctx: cancelled, is: context.Canceled},
		{name: "bad config", ds: data(100, 2, 4), change: func(o *workflow.Options) { o.Train.Folds = 1 }, want: "folds must be >= 2"},
		{name: "features do not fit the backbone", ds: data(100, 2, 4),
			change: func(o *workflow.Options) { o.Backbone.FeatureShape = []int{1280, 4, 4} }, want: "the features have 32 values"},
		{name: "gate without a way to open heads", ds: data(100, 2, 4),
			change: func(o *workflow.Options) { o.Install, o.OpenHead = true, nil }, want: "open heads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := options(t, open)
			if tc.change != nil {
				tc.change(&opts)
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			r, err := workflow.Run(ctx, tc.ds, opts)
			if err == nil || r != nil {
				t.Fatalf("Run = %v, %v; want an error", r, err)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			if _, err := os.Stat(filepath.Join(opts.Out, workflow.HeadFile)); err == nil {
				t.Error("a failed run exported a head")
			}
		})
	}
}

func TestEval(t *testing.T) {
	ds := data(120, 2, 5)
	_, open := newEngine(t)
	path := filepath.Join(t.TempDir(), "head.onnx")
	exportHead(t, path, ds, quick(), 0.3)
	h, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tc := range []struct {
		name       string
		configured spec.Threshold
		want       float64
	}{
		{"the head's threshold", spec.NoThreshold, 0.3},
		{"model.threshold", spec.ThresholdOf(0.8), 0.8},
		{"model.threshold: 0 is honoured", spec.ThresholdOf(0), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := workflow.Eval(t.Context(), ds, h, tc.configured)
			if err != nil {
				t.Fatal(err)
			}
			m := ev.Metrics
			if m.Threshold != tc.want || m.N != ds.Len() || len(ev.Scores) != ds.Len() {
				t.Errorf("threshold %g n %d scores %d, want %g %d", m.Threshold, m.N, len(ev.Scores), tc.want, ds.Len())
			}
			if !(m.AUC > 0.9) {
				t.Errorf("AUC %g of a trained head on its own data", m.AUC)
			}
			if tc.want == 0 && (m.Recall != 1 || m.Confusion[0][0] != 0) {
				t.Errorf("at threshold 0 every face is fake; confusion %v", m.Confusion)
			}
		})
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := workflow.Eval(cancelled, ds, h, spec.NoThreshold); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Eval: %v", err)
	}
}

// poisoned is ds with every label flipped, as label commands from someone
// who may publish to the broker could make it.
type poisoned struct{ *mem }

func (p poisoned) Label(i int) int { return 1 - p.mem.Label(i) }

// TestGateSet: on data whose labels were flipped, the held-out samples (from
// the same poisoned folder) vouch for a head trained on them; the operator's
// trusted gate set refuses it and keeps the installed head.
func TestGateSet(t *testing.T) {
	_, open := newEngine(t)
	for _, tc := range []struct {
		name    string
		gateSet train.Dataset
		install bool
		// data to train on (default: poisoned); the installed head's threshold (default 0.5)
		data      train.Dataset
		threshold float64
	}{
		{name: "without a gate set the poisoned head is installed", install: true},
		{name: "the gate set refuses it", gateSet: data(80, 2, 9)},
		// An installed head at threshold 0 catches every fake; a candidate
		// that ranks them as well but catches fewer is refused.
		{name: "the gate set refuses a head that catches fewer of its fakes", gateSet: data(80, 2, 9),
			data: data(200, 2, 5), threshold: 1e-9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := options(t, open)
			opts.Install, opts.GateSet, opts.GateMargin = true, tc.gateSet, 0.02
			if err := os.MkdirAll(filepath.Dir(opts.Head), 0o755); err != nil {
				t.Fatal(err)
			}
			ds, threshold := tc.data, tc.threshold
			if ds == nil {
				ds = poisoned{data(200, 2, 5)}
			}
			if threshold == 0 {
				threshold = 0.5
			}
			exportHead(t, opts.Head, data(200, 2, 3), quick(), threshold)
			before, _ := os.ReadFile(opts.Head)
			r, err := workflow.Run(context.Background(), ds, opts)
			if err != nil {
				t.Fatal(err)
			}
			g := r.Gate
			if g.Replaced != tc.install {
				t.Fatalf("replaced %v, want %v: %s", g.Replaced, tc.install, g.Reason)
			}
			after, _ := os.ReadFile(opts.Head)
			if bytes.Equal(after, before) == tc.install {
				t.Errorf("installed head changed: %v, want %v", !bytes.Equal(after, before), tc.install)
			}
			if tc.gateSet == nil {
				return
			}
			if tc.data != nil {
				t.Log(g.Reason)
				if gs := g.GateSet; gs == nil || gs.Installed == nil || gs.Installed.Recall != 1 || gs.Candidate.AUC < gs.Installed.AUC-opts.GateMargin ||
					!strings.Contains(g.Reason, "on the trusted gate set: the candidate catches") {
					t.Errorf("gate set %+v, reason %q; want a refusal for the fakes caught alone", gs, g.Reason)
				}
				return
			}
			if g.GateSet == nil || g.GateSet.Samples != 80 || g.GateSet.Installed == nil ||
				g.GateSet.Candidate.AUC > 0.3 || g.GateSet.Installed.AUC < 0.7 || !strings.Contains(g.Reason, "on the trusted gate set") {
				t.Errorf("gate set %+v, reason %q; want the candidate's AUC low and the installed head's high on it", g.GateSet, g.Reason)
			}
		})
	}
}

// nonAffine is a head whose logits are not an affine map of its features.
type nonAffine struct{ gate.Head }

func (h nonAffine) Logits(x []float32, n int, dst []float32) error {
	if err := h.Head.Logits(x, n, dst); err != nil {
		return err
	}
	for i, v := range dst {
		dst[i] = v * v
	}
	return nil
}

// TestMix: a head taught a new camera (whose fakes show a cue in features
// 4-7 the installed head never used) is mixed with the installed one (which
// knows the cue in features 0-3): with the reference, the exported head keeps
// the reference's AUC within the margin and still learns the camera; the
// exported file is the mix the report describes; an installed head that is
// missing or not affine is not mixed, and says why.
func TestMix(t *testing.T) {
	_, open := newEngine(t)
	camera, reference := dataOn(200, 2, 11, 4), data(120, 2, 12)
	for _, tc := range []struct {
		name      string
		installed bool
		open      func(string) (gate.Head, error)
		reference train.Dataset
		skipped   string
	}{
		{name: "with a reference", installed: true, reference: reference},
		{name: "without a reference", installed: true},
		{name: "no installed head", skipped: "the installed head"},
		{name: "installed head not affine", installed: true, skipped: "not an affine map",
			open: func(p string) (gate.Head, error) { h, err := open(p); return nonAffine{h}, err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := options(t, open)
			if tc.open != nil {
				opts.OpenHead = tc.open
			}
			opts.Mix, opts.GateSet, opts.GateMargin = true, tc.reference, 0.02
			if tc.installed {
				if err := os.MkdirAll(filepath.Dir(opts.Head), 0o755); err != nil {
					t.Fatal(err)
				}
				exportHead(t, opts.Head, data(200, 2, 3), quick(), 0.5)
			}
			r, err := workflow.Run(t.Context(), camera, opts)
			if err != nil {
				t.Fatal(err)
			}
			m := r.Mix
			if m == nil {
				t.Fatal("no mix in the report")
			}
			if tc.skipped != "" {
				if !strings.Contains(m.Skipped, tc.skipped) || m.MixReport != nil || r.Final.Threshold != r.CV.Threshold || r.Final.OutOfFold != r.CV.OutOfFold {
					t.Errorf("mix %+v, threshold %g (cv %g); want skipped for %q with the new head's threshold", m, r.Final.Threshold, r.CV.Threshold, tc.skipped)
				}
				return
			}
			if m.Skipped != "" || len(m.Candidates) == 0 || m.Candidates[0].Alpha != 0 || m.Rule == "" {
				t.Fatalf("mix %+v", m)
			}
			var chosen workflow.MixCandidate
			for _, c := range m.Candidates {
				if c.Alpha == m.Alpha {
					chosen = c
				}
			}
			installedAUC := m.Candidates[0].AUC
			ref := "none"
			if chosen.ReferenceAUC != nil {
				ref = fmt.Sprintf("%.3f", *chosen.ReferenceAUC)
			}
			t.Logf("weight %g, out-of-fold AUC %.3f (installed %.3f), reference AUC %s: %s", m.Alpha, chosen.AUC, installedAUC, ref, m.Rule)
			if !(m.Alpha > 0 && chosen.AUC > installedAUC+0.1) {
				t.Errorf("weight %g, out-of-fold AUC %g against the installed head's %g: the camera was not learned", m.Alpha, chosen.AUC, installedAUC)
			}
			if math.Abs(m.OutOfFold.AUC-chosen.AUC) > 1e-9 || r.Final.Threshold != m.OutOfFold.Threshold || r.Final.OutOfFold != m.OutOfFold {
				t.Errorf("exported out-of-fold %+v, chosen %+v", m.OutOfFold, chosen)
			}
			if tc.reference == nil {
				if chosen.ReferenceAUC != nil {
					t.Error("a reference AUC without a reference")
				}
				return
			}
			referenceAUC := func(head string) float64 {
				h, err := open(head)
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				ev, err := workflow.Eval(t.Context(), reference, h, spec.NoThreshold)
				if err != nil {
					t.Fatal(err)
				}
				return ev.Metrics.AUC
			}
			if inst := referenceAUC(opts.Head); chosen.ReferenceAUC == nil || *chosen.ReferenceAUC < inst-opts.GateMargin || m.Alpha == 1 {
				t.Errorf("weight %g keeps reference AUC %v, installed head's %g: it forgot", m.Alpha, chosen.ReferenceAUC, inst)
			}
			// The exported file is that mix: its reference AUC is the report's.
			if got := referenceAUC(r.Final.Head); math.Abs(got-*chosen.ReferenceAUC) > 1e-6 {
				t.Errorf("exported head's reference AUC %g, the report's %g", got, *chosen.ReferenceAUC)
			}
		})
	}
}

// TestCompare: Compare holds out and scores both heads as Install does, and
// leaves the installed head as it was, whatever the gate decides.
func TestCompare(t *testing.T) {
	_, open := newEngine(t)
	ds := data(200, 2, 1)
	opts := options(t, open)
	opts.Compare = true
	if err := os.MkdirAll(filepath.Dir(opts.Head), 0o755); err != nil {
		t.Fatal(err)
	}
	exportHead(t, opts.Head, ds, train.Config{}, 0.5) // untrained: the gate would let the new head in
	before, _ := os.ReadFile(opts.Head)
	r, err := workflow.Run(t.Context(), ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	g := r.Gate
	if g == nil || g.Held == 0 || g.Installed == nil || !g.Install || g.Replaced || !g.CompareOnly || g.Over != opts.Head {
		t.Fatalf("gate %+v; want both heads scored, the decision to install, nothing installed", g)
	}
	var out strings.Builder
	r.WriteOutcome(&out)
	if want := "compared only, nothing installed; the gate would install the new head"; !strings.Contains(out.String(), want) {
		t.Errorf("outcome lacks %q:\n%s", want, out.String())
	}
	after, _ := os.ReadFile(opts.Head)
	if !bytes.Equal(after, before) {
		t.Error("Compare changed the installed head")
	}
	if kept, err := install.Kept(opts.Head); kept != 0 || err != nil {
		t.Errorf("Compare kept %d heads for rollback (%v)", kept, err)
	}
}

// TestWritePredictions writes one row per sample with its label word and score.
func TestWritePredictions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.csv")
	samples := []features.Sample{{Path: "real/a.jpg", Label: train.Real}, {Path: "fake/b.jpg", Label: train.Fake}}
	if err := workflow.WritePredictions(path, samples, []float64{0.25, 0.875}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if want := "path,label,p_fake\nreal/a.jpg,real,0.25\nfake/b.jpg,fake,0.875\n"; err != nil || string(b) != want {
		t.Errorf("predictions %q, %v; want %q", b, err, want)
	}
	if err := workflow.WritePredictions(filepath.Join(path, "x.csv"), samples, []float64{0, 1}); err == nil {
		t.Error("wrote under a file")
	}
}
