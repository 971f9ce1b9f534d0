// Package workflow is `deepfaked train` and `deepfaked eval` without the
// command line: from a data folder's features to an exported, cross-validated
// head, its report (metrics.json) and plots, and the validation gate that
// installs it over the daemon's head; and the scoring of an installed head on
// a data folder. cmd/deepfaked only reads flags, wires components from the
// config and prints.
package workflow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/gate"
	"github.com/deepfaked/deepfaked/train/install"
)

// Files Run writes in Options.Out.
const (
	HeadFile      = "head.onnx"
	MetricsFile   = "metrics.json"
	ConfusionFile = "confusion.png"
	ROCFile       = "roc.png"
)

// Options configure Run.
type Options struct {
	Train train.Config
	// Out is the folder for head.onnx, metrics.json and the plots; made if missing.
	Out string
	// Backbone describes the model that made the features; the head is
	// exported for its input size and feature shape.
	Backbone Backbone
	// Source describes where the features came from, for the report.
	Source Source
	// Install holds Holdout of the data (stratified, grouped) out of
	// training, scores the new head and the one at Head there, and installs
	// the new head over Head unless its AUC is lower by more than GateMargin.
	Install bool
	// Compare holds out, scores and decides as Install does, and installs
	// nothing: the page shows both heads and its user chooses.
	Compare    bool
	Holdout    float64
	GateMargin float64
	Head       string
	// GateSet, when not nil, is a labelled set the operator controls
	// (train.gate_set): the candidate must also not be worse than the
	// installed head on it by more than GateMargin. The held-out samples come
	// from the same folder as the training data, so labels poisoned there
	// (through MQTT label commands) would vouch for a head trained on them.
	GateSet train.Dataset
	// Mix mixes the head trained on the data with the installed one (Head)
	// so that it keeps what that one knew (MixReport; the gate set is its
	// reference). An installed head that is missing or not an affine map of
	// these features is not mixed; Report.Mix.Skipped says why.
	Mix bool
	// OpenHead opens an exported head for the gate and the mix (infer.LoadHead).
	OpenHead gate.Opener
	// Signing signs the head installed and refuses one no trusted key
	// signed (model.trusted_keys, train.signing_key).
	Signing install.Signing
	// Began is when the command began, for the report's total time; the
	// features' extraction time is Source.Seconds.
	Began time.Time
	// Progress receives every training step of the cross-validation and the final fit.
	Progress train.ProgressFunc
	// HeldOut is told how many of the samples the gate keeps out of training.
	HeldOut func(held, total int)
}

// Backbone is the backbone that made the features.
type Backbone struct {
	Path         string `json:"path"`
	ID           string `json:"id"`
	InputSize    int    `json:"input_size"`
	FeatureShape []int  `json:"-"` // C,H,W; its product is the features' dimension
	Features     int    `json:"features"`
}

// Source is where the features came from.
type Source struct {
	Dir       string            // the data folder
	HasLabels bool              // from labels.csv rather than real/ and fake/
	Crop      string            // crop mode
	SelfBlend int               // self-blended fakes made of each real image
	Skipped   []dataset.Skipped // images left out
	NoFace    []string          // images used whole: no face found
	Cached    int               // features taken from the cache
	Extracted int               // features computed
	Seconds   float64           // time to load the features
}

// Report is what Run did: metrics.json.
type Report struct {
	Data      DataReport         `json:"data"`
	Backbone  Backbone           `json:"backbone"`
	Config    ConfigReport       `json:"config"`
	CV        *train.CVResult    `json:"cross_validation"`
	Final     Final              `json:"final"`
	Mix       *Mixed             `json:"mix,omitempty"`
	Gate      *Gate              `json:"gate,omitempty"`
	Timings   map[string]float64 `json:"timings_s"`
	PeakRSSMB float64            `json:"peak_rss_mib"`
}

// DataReport describes the training data.
type DataReport struct {
	Dir       string            `json:"dir"`
	Labels    string            `json:"labels"` // "labels.csv" or "folders"
	Real      int               `json:"real"`
	Fake      int               `json:"fake"`
	SelfBlend int               `json:"self_blend"` // fakes made of each real image (counted in Fake)
	Groups    int               `json:"groups"`
	Skipped   []dataset.Skipped `json:"skipped"`
	NoFace    []string          `json:"no_face"`
	Crop      string            `json:"crop"`
	Cached    int               `json:"cached"`
	Extracted int               `json:"extracted"`
	SHA256    string            `json:"train_set_sha256"`
}

// ConfigReport is the training configuration with the gate's settings.
type ConfigReport struct {
	train.Config
	Holdout    float64 `json:"holdout"`
	GateMargin float64 `json:"gate_margin"`
}

// Final is the exported head.
type Final struct {
	Epochs    int     `json:"epochs"`
	Samples   int     `json:"samples"`
	Threshold float64 `json:"threshold"`
	Head      string  `json:"head"` // its path
	// OutOfFold is the exported head's out-of-fold metrics at Threshold: the
	// cross-validation's, or the mix's (Report.Mix).
	OutOfFold train.Metrics `json:"out_of_fold"`
}

// Gate is the validation gate's outcome.
type Gate struct {
	gate.Result
	Replaced    bool   `json:"replaced"`     // the new head was installed
	CompareOnly bool   `json:"compare_only"` // Options.Compare: scored, never installed
	Over        string `json:"over"`         // the installed head's path
}

// Run trains a head on data: a stratified grouped k-fold cross-validation
// picks the threshold (on the out-of-fold predictions) and the epoch count, a
// final head is trained on all of it, and the head exported to
// Out/head.onnx is the average of the final and the fold heads. With Install
// the gate decides whether it replaces the installed head; a refusal is
// Report.Gate.Install false, not an error. Out gets metrics.json and the plots.
func Run(ctx context.Context, data train.Dataset, opts Options) (*Report, error) {
	began := opts.Began
	if began.IsZero() {
		began = time.Now()
	}
	if err := opts.Train.Validate(); err != nil {
		return nil, err
	}
	gating := opts.Install || opts.Compare
	if (gating || opts.Mix) && opts.OpenHead == nil {
		return nil, fmt.Errorf("train: the gate and the mix need a way to open heads")
	}
	r := &Report{Backbone: opts.Backbone, Timings: map[string]float64{"features": opts.Source.Seconds},
		Config: ConfigReport{Config: opts.Train, Holdout: opts.Holdout, GateMargin: opts.GateMargin}}
	if err := r.describe(data, opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	ds := data
	var held train.Dataset
	if gating {
		trainIdx, heldIdx, err := gate.Holdout(train.Labels(data), train.Groups(data), opts.Holdout, opts.Train.Seed)
		if err != nil {
			return nil, err
		}
		ds, held = subset(data, trainIdx), subset(data, heldIdx)
		if opts.HeldOut != nil {
			opts.HeldOut(held.Len(), data.Len())
		}
	}
	start := time.Now()
	cv, err := train.CrossValidate(ctx, ds, opts.Train, opts.Progress)
	if err != nil {
		return nil, err
	}
	r.CV = cv
	r.Timings["cross_validation"] = time.Since(start).Seconds()
	start = time.Now()
	final := opts.Train
	final.Epochs = cv.Epochs
	fit, err := train.Fit(ctx, ds, allIdx(ds.Len()), nil, final, opts.Progress)
	if err != nil {
		return nil, err
	}
	r.Timings["final_fit"] = time.Since(start).Seconds()
	if r.Data.SHA256, err = train.TrainSetSHA256(ctx, ds); err != nil {
		return nil, err
	}
	// The exported head averages the final fit with the fold heads: one
	// linear map, less seed-to-seed variance than any of them alone.
	head, err := train.Average(append(cv.Heads, fit.Head)...)
	if err != nil {
		return nil, err
	}
	// What the exported head is judged by: the cross-validation's
	// out-of-fold predictions, or the mix's.
	scores, threshold, oof := cv.Scores, cv.Threshold, cv.OutOfFold
	if opts.Mix {
		start = time.Now()
		var mixed *Mixed
		if head, mixed, err = mix(ctx, ds, cv, head, opts); err != nil {
			return nil, err
		}
		r.Mix = mixed
		if mixed.Skipped == "" {
			scores, threshold, oof = mixed.scores, mixed.OutOfFold.Threshold, mixed.OutOfFold
		}
		r.Timings["mix"] = time.Since(start).Seconds()
	}
	headPath := filepath.Join(opts.Out, HeadFile)
	if err := head.ExportONNX(headPath, train.ExportInfo{InputSize: opts.Backbone.InputSize, FeatureShape: opts.Backbone.FeatureShape,
		Threshold: threshold, TrainedAt: time.Now(), TrainSetSHA256: r.Data.SHA256, Metrics: oof}); err != nil {
		return nil, err
	}
	r.Final = Final{Epochs: cv.Epochs, Samples: ds.Len(), Threshold: threshold, Head: headPath, OutOfFold: oof}
	if err := train.WriteConfusionPNG(filepath.Join(opts.Out, ConfusionFile), oof); err != nil {
		return nil, err
	}
	if err := train.WriteROCPNG(filepath.Join(opts.Out, ROCFile), train.Labels(ds), scores); err != nil {
		return nil, err
	}
	if gating {
		start = time.Now()
		if r.Gate, err = runGate(ctx, held, headPath, opts); err != nil {
			return nil, err
		}
		r.Timings["gate"] = time.Since(start).Seconds()
	}
	r.Timings["total"] = time.Since(began).Seconds()
	r.PeakRSSMB = peakRSSMiB()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(opts.Out, MetricsFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

// describe fills the report's data section and refuses data that cannot
// train (train.Shortfall: one class, too few groups).
func (r *Report) describe(data train.Dataset, opts Options) error {
	s := opts.Source
	r.Data = DataReport{Dir: s.Dir, Labels: "folders", Crop: s.Crop, SelfBlend: s.SelfBlend, Skipped: s.Skipped, NoFace: s.NoFace,
		Cached: s.Cached, Extracted: s.Extracted}
	if s.HasLabels {
		r.Data.Labels = dataset.LabelsFile
	}
	if r.Data.Skipped == nil {
		r.Data.Skipped = []dataset.Skipped{}
	}
	if r.Data.NoFace == nil {
		r.Data.NoFace = []string{}
	}
	groups := map[string]bool{}
	for i := range data.Len() {
		groups[data.Group(i)] = true
		if data.Label(i) == train.Fake {
			r.Data.Fake++
		} else {
			r.Data.Real++
		}
	}
	r.Data.Groups = len(groups)
	if r.Data.Real == 0 || r.Data.Fake == 0 {
		return fmt.Errorf("data folder %s: after skipping unreadable files %d real and %d fake images are left: both classes are needed",
			s.Dir, r.Data.Real, r.Data.Fake)
	}
	holdout := 0.0
	if opts.Install || opts.Compare {
		holdout = opts.Holdout
	}
	if short := train.Shortfall(train.Labels(data), train.Groups(data), opts.Train.Folds, holdout); short != "" {
		return fmt.Errorf("data folder %s: %s", s.Dir, short)
	}
	if want := product(opts.Backbone.FeatureShape); want != data.Dim() {
		return fmt.Errorf("train: the features have %d values but the backbone's shape %v holds %d", data.Dim(), opts.Backbone.FeatureShape, want)
	}
	return nil
}

func product(s []int) int {
	p := 1
	for _, v := range s {
		p *= v
	}
	return p
}

func allIdx(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// subsetOf is samples idx of a dataset, in that order.
type subsetOf struct {
	train.Dataset
	idx []int
}

func subset(ds train.Dataset, idx []int) train.Dataset { return &subsetOf{ds, idx} }

func (s *subsetOf) Len() int           { return len(s.idx) }
func (s *subsetOf) Label(i int) int    { return s.Dataset.Label(s.idx[i]) }
func (s *subsetOf) Group(i int) string { return s.Dataset.Group(s.idx[i]) }
func (s *subsetOf) Features(i int, dst []float32) error {
	if i < 0 || i >= len(s.idx) {
		return fmt.Errorf("sample %d out of range [0,%d)", i, len(s.idx))
	}
	return s.Dataset.Features(s.idx[i], dst)
}

// peakRSSMiB is this process's resident high-water mark (0 where /proc is absent).
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err == nil {
				return float64(kb) / 1024
			}
		}
	}
	return 0
}

// WriteOutcome says what became of the new head: its mix with the installed
// one, both heads' scores at the gate, and the gate's decision.
func (r *Report) WriteOutcome(w io.Writer) {
	if m := r.Mix; m != nil {
		if m.Skipped != "" {
			fmt.Fprintf(w, "not mixed with the installed head: %s\n", m.Skipped)
		} else {
			fmt.Fprintf(w, "mixed with the installed head: new head weight %.1f (%s); out-of-fold AUC %.4f\n", m.Alpha, m.Rule, m.OutOfFold.AUC)
		}
	}
	g := r.Gate
	if g == nil {
		return
	}
	fmt.Fprintf(w, "gate on %d held-out images: new head AUC %.4f, installed head AUC %s\n", g.Held, g.CandidateAUC, train.FormatAUC(g.InstalledAUC))
	if gs := g.GateSet; gs != nil {
		inst := math.NaN()
		if gs.Installed != nil {
			inst = gs.Installed.AUC
		}
		fmt.Fprintf(w, "gate on the trusted gate set (%d images): new head AUC %.4f, installed head AUC %s\n", gs.Samples, gs.Candidate.AUC, train.FormatAUC(inst))
	}
	switch {
	case g.CompareOnly:
		would := "keep the installed head"
		if g.Install {
			would = "install the new head"
		}
		fmt.Fprintf(w, "compared only, nothing installed; the gate would %s: %s\n", would, g.Reason)
	case g.Replaced:
		fmt.Fprintf(w, "installed %s over %s ('deepfaked rollback' puts the replaced head back): %s\n", r.Final.Head, g.Over, g.Reason)
	default:
		fmt.Fprintf(w, "not installed: %s\n", g.Reason)
	}
}

// WriteTable prints the report's metrics as a table: each fold, the
// out-of-fold predictions and, after a gate, both heads on the held-out set.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tn\tepochs\taccuracy\tprecision\trecall\tF1\tROC-AUC\tlog loss\tthreshold\ttn\tfp\tfn\ttp\t")
	row := func(name string, m train.Metrics, epochs string) {
		c := m.Confusion
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.4f\t%.4f\t%.4f\t%.4f\t%s\t%.4f\t%.3f\t%d\t%d\t%d\t%d\t\n", name, m.N, epochs,
			m.Accuracy, m.Precision, m.Recall, m.F1, train.FormatAUC(m.AUC), m.LogLoss, m.Threshold, c[0][0], c[0][1], c[1][0], c[1][1])
	}
	for _, f := range r.CV.Folds {
		row(fmt.Sprintf("fold %d", f.Fold), f.Metrics, strconv.Itoa(f.BestEpoch))
	}
	row("out-of-fold", r.CV.OutOfFold, strconv.Itoa(r.CV.Epochs))
	if g := r.Gate; g != nil {
		row("held-out new", g.Candidate, "")
		if g.Installed != nil {
			row("held-out installed", *g.Installed, "")
		}
	}
	return tw.Flush()
}
