package main

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

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/features"
	"github.com/deepfaked/deepfaked/train/install"
)

// exitGateRefused is train --install's status when the gate keeps the installed head.
const exitGateRefused = 3

// Crop modes of train and eval.
const (
	cropNone = "none"
	cropFace = "face"
)

// dataFlags are the flags train and eval share.
type dataFlags struct {
	config, data, crop, cache, featuresOut string
}

func (f *dataFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (models, runtime, faces, train)")
	cmd.Flags().StringVar(&f.data, "data", "", "labelled folder: DIR/real/* and DIR/fake/*, or DIR/labels.csv (path,label,identity)")
	cmd.Flags().StringVar(&f.crop, "crop", cropNone, "none: each image is already a face crop (as the daemon saves them); face: crop the largest face found by faces.detector, as the daemon does with frames")
	cmd.Flags().StringVar(&f.cache, "cache", "", "feature cache folder (default <state_dir>/features)")
	cmd.Flags().StringVar(&f.featuresOut, "features-out", "", "also write the features as DIR/features.f32 + DIR/labels.csv (label,group) for other tools")
	_ = cmd.MarkFlagRequired("data")
}

// featureSet is a data folder's features with the models that made them.
type featureSet struct {
	cfg      *config.Config
	eng      *engine.Engine
	backbone *infer.Backbone
	cache    *features.Cache
	folder   *features.Folder
	res      *features.Result
	seconds  float64
}

func (s *featureSet) Close() {
	if s.cache != nil {
		s.cache.Close()
	}
	if s.backbone != nil {
		s.backbone.Close()
	}
	if s.eng != nil {
		s.eng.Close()
	}
}

// loadFeatures reads the folder, opens the engine and backbone, and extracts
// (or takes from the cache) every image's features, drawing progress on stderr.
func loadFeatures(ctx context.Context, cfg *config.Config, f dataFlags, stderr io.Writer) (s *featureSet, err error) {
	if f.crop != cropNone && f.crop != cropFace {
		return nil, fmt.Errorf("--crop %q: want %s or %s", f.crop, cropNone, cropFace)
	}
	folder, err := features.LoadFolder(f.data)
	if err != nil {
		return nil, err
	}
	s = &featureSet{cfg: cfg, folder: folder}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	log := newLogger("warn")
	if s.eng, err = engine.New(engine.Options{Library: cfg.Model.Runtime, Providers: cfg.Model.Providers,
		Threads: cfg.Model.Threads, Logger: log}); err != nil {
		return s, fmt.Errorf("model.runtime: %w", err)
	}
	if s.backbone, err = infer.LoadBackbone(s.eng, cfg.Model.Backbone); err != nil {
		return s, err
	}
	meta := s.backbone.Meta()
	pre, err := preprocess.New(preprocess.Params{Size: meta.InputSize, Mean: meta.Mean, Std: meta.Std, Margin: cfg.Faces.Margin})
	if err != nil {
		return s, err
	}
	defer pre.Close()
	ex := &features.Extractor{Backbone: s.backbone, InputSize: meta.InputSize, Pre: pre, Batch: 16}
	key := features.Key{Backbone: s.backbone.ID(), InputSize: meta.InputSize, Crop: cropNone}
	if f.crop == cropFace {
		det, err := face.New(face.Options{Kind: cfg.Faces.Detector, Model: cfg.Faces.Model, MinSize: cfg.Faces.MinSize,
			Score: float32(cfg.Faces.Score), Engine: s.eng})
		if err != nil {
			return s, fmt.Errorf("faces.detector %s: %w", cfg.Faces.Detector, err)
		}
		defer det.Close()
		ex.Detector = det
		// Everything that moves the crop is part of the cache key.
		key.Crop = fmt.Sprintf("face:%s:%s:margin=%g:min_size=%d:score=%g", cfg.Faces.Detector, cfg.Faces.Model,
			cfg.Faces.Margin, cfg.Faces.MinSize, cfg.Faces.Score)
	}
	cacheDir := f.cache
	if cacheDir == "" {
		cacheDir = filepath.Join(cfg.StateDir, "features")
	}
	if s.cache, err = features.OpenCache(cacheDir, key, s.backbone.FeatureSize()); err != nil {
		return s, err
	}
	real, fake := folder.Counts()
	fmt.Fprintf(stderr, "%s: %d real, %d fake images (%s)\n", f.data, real, fake, map[bool]string{true: "labels.csv", false: "real/ and fake/ folders"}[folder.HasLabels])
	bar := newProgressBar(stderr, "features")
	start := time.Now()
	s.res, err = ex.Extract(ctx, folder, s.cache, func(p features.Progress) {
		bar.update(p.Done, p.Total, -1, fmt.Sprintf("%d cached, %d extracted, %d skipped", p.Cached, p.Extracted, p.Skipped))
	})
	bar.done()
	if err != nil {
		return s, err
	}
	s.seconds = time.Since(start).Seconds()
	fmt.Fprintf(stderr, "features: %d cached, %d extracted in %.1fs (cache %s)\n", s.res.Cached, s.res.Extracted, s.seconds, s.cache.Dir())
	if n := len(s.res.NoFace); n > 0 {
		fmt.Fprintf(stderr, "warning: no face found in %d image(s); used them whole: %s\n", n, listSome(s.res.NoFace))
	}
	if n := len(s.res.Skipped); n > 0 {
		paths := make([]string, n)
		for i, k := range s.res.Skipped {
			paths[i] = k.Path + " (" + k.Reason + ")"
		}
		fmt.Fprintf(stderr, "warning: skipped %d unreadable or non-image file(s): %s\n", n, listSome(paths))
	}
	if f.featuresOut != "" {
		if err := os.MkdirAll(f.featuresOut, 0o755); err != nil {
			return s, err
		}
		if err := s.res.Dataset.WriteFiles(filepath.Join(f.featuresOut, "features.f32"), filepath.Join(f.featuresOut, "labels.csv")); err != nil {
			return s, err
		}
	}
	return s, nil
}

func listSome(items []string) string {
	const most = 10
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:most], ", ") + fmt.Sprintf(", … and %d more", len(items)-most)
}

// headScores are an ONNX head's fake probabilities for every sample of ds.
func headScores(ctx context.Context, h *infer.Head, ds train.Dataset) ([]float64, error) {
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
		if err := h.Logits(x[:n*d], n, logits[:2*n]); err != nil {
			return nil, err
		}
		for k := range n {
			scores[s+k] = train.FakeProb(logits[2*k], logits[2*k+1])
		}
	}
	return scores, nil
}

// trainReport is metrics.json.
type trainReport struct {
	Data struct {
		Dir       string             `json:"dir"`
		Labels    string             `json:"labels"`
		Real      int                `json:"real"`
		Fake      int                `json:"fake"`
		Groups    int                `json:"groups"`
		Skipped   []features.Skipped `json:"skipped"`
		NoFace    []string           `json:"no_face"`
		Crop      string             `json:"crop"`
		Cached    int                `json:"cached"`
		Extracted int                `json:"extracted"`
		SHA256    string             `json:"train_set_sha256"`
	} `json:"data"`
	Backbone struct {
		Path      string `json:"path"`
		ID        string `json:"id"`
		InputSize int    `json:"input_size"`
		Features  int    `json:"features"`
	} `json:"backbone"`
	Config    trainConfigJSON    `json:"config"`
	CV        *train.CVResult    `json:"cross_validation"`
	Final     finalJSON          `json:"final"`
	Gate      *gateJSON          `json:"gate,omitempty"`
	Timings   map[string]float64 `json:"timings_s"`
	PeakRSSMB float64            `json:"peak_rss_mib"`
}

type trainConfigJSON struct {
	train.Config
	Holdout    float64 `json:"holdout"`
	GateMargin float64 `json:"gate_margin"`
}

type finalJSON struct {
	Epochs    int     `json:"epochs"`
	Samples   int     `json:"samples"`
	Threshold float64 `json:"threshold"`
	Head      string  `json:"head"`
}

type gateJSON struct {
	install.Decision
	Held      int            `json:"held_out"`
	Candidate train.Metrics  `json:"candidate"`
	Installed *train.Metrics `json:"installed_head,omitempty"` // absent when it could not be scored
	Replaced  bool           `json:"replaced"`                 // the new head was installed
}

func newTrainCmd() *cobra.Command {
	var (
		df                        dataFlags
		out                       string
		doInstall                 bool
		lr, l1, wd, dropout       float64
		epochs, folds, batch, pat int
		seed                      int
		classWeights              string
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train the classification head on a labelled folder of face images, report cross-validated metrics, optionally install it",
		Long: `Train the head on the configured backbone's features of a labelled folder:
DIR/real/* and DIR/fake/*, or DIR/labels.csv (path,label,identity; paths
relative to DIR; identity groups images that must stay on one side of a split).

Features are cached under <state_dir>/features (or --cache) by image sha256,
backbone id, input size and crop mode, so a re-run skips extraction. Then a
stratified k-fold cross-validation grouped by identity (class weights per
train.class_weights, early stopping) picks the threshold on the out-of-fold predictions
and the epoch count, and a final head is trained on all the data; the head
exported is the average of it and the fold heads (one linear layer),
is written with its metrics to --out (head.onnx, metrics.json, confusion.png,
roc.png).

--install keeps train.holdout of the data (stratified, grouped) out of
training, scores the new head and the installed one (model.head) there, and
installs the new head only if its AUC is not lower by more than
train.gate_margin; exit status 3 when it is refused. The install is atomic
and keeps the old head as <head>.prev for 'deepfaked rollback'.

Hyperparameters come from the config's train: section; flags override it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			began := time.Now()
			conf, err := config.Load(df.config)
			if err != nil {
				return err
			}
			tc := conf.Train
			fl := cmd.Flags()
			set := func(name string, apply func()) {
				if fl.Changed(name) {
					apply()
				}
			}
			set("lr", func() { tc.LR = lr })
			set("l1", func() { tc.L1 = l1 })
			set("weight-decay", func() { tc.WeightDecay = wd })
			set("dropout", func() { tc.Dropout = dropout })
			set("epochs", func() { tc.Epochs = epochs })
			set("folds", func() { tc.Folds = folds })
			set("batch", func() { tc.BatchSize = batch })
			set("patience", func() { tc.Patience = pat })
			set("seed", func() { tc.Seed = seed })
			set("class-weights", func() { tc.ClassWeights = classWeights })
			if tc.ClassWeights != train.ClassWeightsBalanced && tc.ClassWeights != train.ClassWeightsNone {
				return fmt.Errorf("--class-weights %q: want %s or %s", tc.ClassWeights, train.ClassWeightsBalanced, train.ClassWeightsNone)
			}
			cfg := setup.TrainConfig(tc)
			if err := cfg.Validate(); err != nil {
				return err
			}
			s, err := loadFeatures(ctx, conf, df, stderr)
			if err != nil {
				return err
			}
			defer s.Close()
			if out == "" {
				out = filepath.Join(s.cfg.StateDir, "train", time.Now().UTC().Format("20060102T150405Z"))
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			r := &trainReport{Timings: map[string]float64{"features": s.seconds}}
			r.Config = trainConfigJSON{Config: cfg, Holdout: tc.Holdout, GateMargin: tc.GateMargin}
			all := s.res.Dataset
			if err := describeData(r, s, df); err != nil {
				return err
			}
			ds := all
			var held *features.Dataset
			if doInstall {
				trainIdx, heldIdx, err := install.Holdout(all.Labels(), groupsOf(all), tc.Holdout, cfg.Seed)
				if err != nil {
					return err
				}
				ds, held = all.Subset(trainIdx), all.Subset(heldIdx)
				fmt.Fprintf(stderr, "holding out %d of %d images (train.holdout %g) to compare with the installed head\n", held.Len(), all.Len(), tc.Holdout)
			}
			bar := newProgressBar(stderr, "train")
			fold := 0
			progress := func(p train.Progress) {
				if p.Fold != fold { // each fit gets its own rate
					bar.done()
					fold = p.Fold
				}
				what := "final"
				if p.Folds > 0 {
					what = fmt.Sprintf("fold %d/%d", p.Fold, p.Folds)
				}
				bar.update((p.Epoch-1)*p.Steps+p.Step, p.Epochs*p.Steps, p.ETA, fmt.Sprintf("%s epoch %d/%d loss %.4f", what, p.Epoch, p.Epochs, p.Loss))
			}
			start := time.Now()
			cv, err := train.CrossValidate(ctx, ds, cfg, progress)
			bar.done()
			if err != nil {
				return err
			}
			r.CV = cv
			r.Timings["cross_validation"] = time.Since(start).Seconds()
			start = time.Now()
			final := cfg
			final.Epochs = cv.Epochs
			fit, err := train.Fit(ctx, ds, allIdx(ds.Len()), nil, final, progress)
			bar.done()
			if err != nil {
				return err
			}
			r.Timings["final_fit"] = time.Since(start).Seconds()
			sha, err := train.TrainSetSHA256(ctx, ds)
			if err != nil {
				return err
			}
			r.Data.SHA256 = sha
			// The exported head averages the final fit with the fold heads: one
			// linear map, less seed-to-seed variance than any of them alone.
			head, err := train.Average(append(cv.Heads, fit.Head)...)
			if err != nil {
				return err
			}
			meta := s.backbone.Meta()
			headPath := filepath.Join(out, "head.onnx")
			if err := head.ExportONNX(headPath, train.ExportInfo{InputSize: meta.InputSize, FeatureShape: meta.FeatureShape[:],
				Threshold: cv.Threshold, TrainedAt: time.Now(), TrainSetSHA256: sha, Metrics: cv.OutOfFold}); err != nil {
				return err
			}
			r.Final = finalJSON{Epochs: cv.Epochs, Samples: ds.Len(), Threshold: cv.Threshold, Head: headPath}
			if err := train.WriteConfusionPNG(filepath.Join(out, "confusion.png"), cv.OutOfFold); err != nil {
				return err
			}
			if err := train.WriteROCPNG(filepath.Join(out, "roc.png"), ds.Labels(), cv.Scores); err != nil {
				return err
			}
			var refused error
			if doInstall {
				start = time.Now()
				if refused, err = gate(ctx, s, held, headPath, tc.GateMargin, r, stdout); err != nil {
					return err
				}
				r.Timings["gate"] = time.Since(start).Seconds()
			}
			r.Timings["total"] = time.Since(began).Seconds()
			r.PeakRSSMB = peakRSSMiB()
			printTrainReport(stdout, r)
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "metrics.json"), append(b, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s (head.onnx, metrics.json, confusion.png, roc.png)\n", out)
			return refused
		},
	}
	df.register(cmd)
	d := config.DefaultTrain()
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "output folder (default <state_dir>/train/<UTC timestamp>)")
	f.BoolVar(&doInstall, "install", false, "install the new head over model.head if the validation gate passes (exit 3 if not)")
	f.Float64Var(&lr, "lr", d.LR, "Adam learning rate; overrides train.lr")
	f.Float64Var(&l1, "l1", d.L1, "L1 penalty on the weights (default: train.l1)")
	f.Float64Var(&wd, "weight-decay", d.WeightDecay, "Adam weight decay; overrides train.weight_decay")
	f.Float64Var(&dropout, "dropout", d.Dropout, "dropout before the linear layer; overrides train.dropout")
	f.IntVar(&epochs, "epochs", d.Epochs, "maximum epochs; overrides train.epochs")
	f.IntVar(&folds, "folds", d.Folds, "cross-validation folds; overrides train.folds")
	f.IntVar(&batch, "batch", d.BatchSize, "batch size; overrides train.batch_size")
	f.IntVar(&pat, "patience", d.Patience, "epochs without a better validation loss before stopping; overrides train.patience")
	f.IntVar(&seed, "seed", d.Seed, "random seed; overrides train.seed")
	f.StringVar(&classWeights, "class-weights", d.ClassWeights, "balanced (weigh classes by n/(2·n_class)) or none; overrides train.class_weights")
	return cmd
}

func describeData(r *trainReport, s *featureSet, df dataFlags) error {
	ds := s.res.Dataset
	r.Data.Dir, r.Data.Crop = df.data, df.crop
	r.Data.Labels = "folders"
	if s.folder.HasLabels {
		r.Data.Labels = features.LabelsFile
	}
	groups := map[string]bool{}
	for _, smp := range ds.Samples {
		groups[smp.Group] = true
		if smp.Label == train.Fake {
			r.Data.Fake++
		} else {
			r.Data.Real++
		}
	}
	r.Data.Groups = len(groups)
	r.Data.Skipped, r.Data.NoFace = s.res.Skipped, s.res.NoFace
	r.Data.Cached, r.Data.Extracted = s.res.Cached, s.res.Extracted
	if r.Data.Skipped == nil {
		r.Data.Skipped = []features.Skipped{}
	}
	if r.Data.NoFace == nil {
		r.Data.NoFace = []string{}
	}
	r.Backbone.Path, r.Backbone.ID = s.cfg.Model.Backbone, s.backbone.ID()
	r.Backbone.InputSize, r.Backbone.Features = s.backbone.Meta().InputSize, s.backbone.FeatureSize()
	if r.Data.Real == 0 || r.Data.Fake == 0 {
		return fmt.Errorf("data folder %s: after skipping unreadable files %d real and %d fake images are left: both classes are needed", df.data, r.Data.Real, r.Data.Fake)
	}
	return nil
}

// gate scores the candidate and the installed head on the held-out samples,
// installs the candidate if the gate lets it, and returns a non-nil exit
// error when it does not.
func gate(ctx context.Context, s *featureSet, held *features.Dataset, candidate string, margin float64, r *trainReport, stdout io.Writer) (error, error) {
	cand, err := infer.LoadHead(s.eng, candidate, s.backbone.FeatureSize())
	if err != nil {
		return nil, err
	}
	defer cand.Close()
	labels := held.Labels()
	cs, err := headScores(ctx, cand, held)
	if err != nil {
		return nil, err
	}
	g := &gateJSON{Held: held.Len()}
	if g.Candidate, err = train.Evaluate(labels, cs, cand.Threshold()); err != nil {
		return nil, err
	}
	installedAUC, installedErr := math.NaN(), error(nil)
	if cur, err := infer.LoadHead(s.eng, s.cfg.Model.Head, s.backbone.FeatureSize()); err != nil {
		installedErr = err
	} else {
		is, err := headScores(ctx, cur, held)
		cur.Close()
		if err != nil {
			return nil, err
		}
		th := cur.Threshold()
		if th == 0 {
			th = 0.5
		}
		m, err := train.Evaluate(labels, is, th)
		if err != nil {
			return nil, err
		}
		g.Installed, installedAUC = &m, m.AUC
	}
	g.Decision = install.Decide(g.Candidate.AUC, installedAUC, installedErr, margin)
	r.Gate = g
	fmt.Fprintf(stdout, "gate on %d held-out images: new head AUC %.4f, installed head AUC %s\n", held.Len(), g.CandidateAUC, fmtAUC(installedAUC))
	if !g.Install {
		fmt.Fprintf(stdout, "not installed: %s\n", g.Reason)
		return &exitError{code: exitGateRefused, err: fmt.Errorf("validation gate refused the new head: %s", g.Reason)}, nil
	}
	if err := install.Install(candidate, s.cfg.Model.Head); err != nil {
		return nil, err
	}
	g.Replaced = true
	fmt.Fprintf(stdout, "installed %s over %s (previous head kept as %s): %s\n", candidate, s.cfg.Model.Head, install.PrevPath(s.cfg.Model.Head), g.Reason)
	return nil, nil
}

func fmtAUC(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

func groupsOf(ds *features.Dataset) []string {
	g := make([]string, ds.Len())
	for i := range g {
		g[i] = ds.Group(i)
	}
	return g
}

func allIdx(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func printTrainReport(w io.Writer, r *trainReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tn\tepochs\taccuracy\tprecision\trecall\tF1\tROC-AUC\tlog loss\tthreshold\ttn\tfp\tfn\ttp\t")
	row := func(name string, m train.Metrics, epochs string) {
		c := m.Confusion
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.4f\t%.4f\t%.4f\t%.4f\t%s\t%.4f\t%.3f\t%d\t%d\t%d\t%d\t\n", name, m.N, epochs,
			m.Accuracy, m.Precision, m.Recall, m.F1, fmtAUC(m.AUC), m.LogLoss, m.Threshold, c[0][0], c[0][1], c[1][0], c[1][1])
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
	tw.Flush()
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

// progressBar draws one \r-rewritten line on a terminal, and a plain line
// every few seconds elsewhere (logs, pipes).
type progressBar struct {
	w     io.Writer
	label string
	tty   bool
	start time.Time
	last  time.Time
	drawn bool
	// lastDone and lastTotal were drawn last: a repeat is not drawn again.
	lastDone, lastTotal int
}

func newProgressBar(w io.Writer, label string) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressBar{w: w, label: label, tty: tty, start: time.Now()}
}

// update draws done of total; eta < 0 estimates it from the rate so far.
func (b *progressBar) update(done, total int, eta time.Duration, detail string) {
	now := time.Now()
	every := 5 * time.Second
	if b.tty {
		every = 100 * time.Millisecond
	}
	if (done < total && now.Sub(b.last) < every) || (done == b.lastDone && total == b.lastTotal) {
		return
	}
	b.last, b.lastDone, b.lastTotal = now, done, total
	el := now.Sub(b.start).Seconds()
	rateText := "…/s" // a rate from the first few milliseconds means nothing
	if el >= 0.5 && done > 0 {
		rate := float64(done) / el
		rateText = fmt.Sprintf("%.1f/s", rate)
		if eta < 0 {
			eta = time.Duration(float64(total-done) / rate * float64(time.Second))
		}
	}
	etaText := "?"
	if eta >= 0 {
		etaText = eta.Round(time.Second).String()
	}
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	line := fmt.Sprintf("%s %d/%d (%.0f%%) %s ETA %s  %s", b.label, done, total, pct, rateText, etaText, detail)
	if b.tty {
		const width = 20
		fill := width * done / max(total, 1)
		fmt.Fprintf(b.w, "\r\033[K%s [%s%s] %s", b.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), line[len(b.label)+1:])
		b.drawn = true
		return
	}
	fmt.Fprintln(b.w, line)
}

// done ends a terminal line and restarts the clock for the next phase.
func (b *progressBar) done() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
	}
	b.drawn, b.start, b.last, b.lastDone, b.lastTotal = false, time.Now(), time.Time{}, 0, 0
}
