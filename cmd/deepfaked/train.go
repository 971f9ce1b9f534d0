package main

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/progress"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/featureset"
	"github.com/deepfaked/deepfaked/train/gate"
	"github.com/deepfaked/deepfaked/train/install"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// exitGateRefused is train --install's status when the gate keeps the installed head.
const exitGateRefused = 3

func newTrainCmd() *cobra.Command {
	var (
		df                        dataFlags
		out                       string
		doInstall, compare        bool
		lr, l1, wd, dropout       float64
		epochs, folds, batch, pat int
		seed, selfBlend           int
		classWeights, mix         string
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
train.gate_margin; exit status 3 when it is refused. --compare does the
same and installs nothing (the page's "teach this camera" shows both heads
and lets its user choose). The install is atomic
and keeps the replaced head (the newest 10 of them) for 'deepfaked rollback'.

--self-blend makes fakes of the real images (so real faces alone can
train) and, with train.mix auto, mixes the new head with the installed one:
logits (1-a)*installed + a*new, a chosen on the out-of-fold predictions
(and on train.gate_set, when set, whose AUC may not fall by more than
train.gate_margin), so the head learns this camera and keeps what it knew.

Hyperparameters come from the config's train: section; flags override it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			began := time.Now()
			cfg, err := config.Load(df.config)
			if err != nil {
				return err
			}
			unlock, err := install.Lock(cfg.StateDir)
			if err != nil {
				return err
			}
			defer unlock()
			if doInstall && compare {
				return fmt.Errorf("--install and --compare: choose one (--compare scores both heads and installs nothing)")
			}
			tc := &cfg.Train // the flags override the config's train: section
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
			set("self-blend", func() { tc.SelfBlend = selfBlend })
			set("mix", func() { tc.Mix = mix })
			if !slices.Contains(config.ClassWeights(), tc.ClassWeights) {
				return fmt.Errorf("--class-weights %q: want one of %v", tc.ClassWeights, config.ClassWeights())
			}
			opts, err := setup.WorkflowOptions(cfg)
			if err != nil {
				return err
			}
			if err := opts.Train.Validate(); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil { // the config's checks, on the values the flags set
				return fmt.Errorf("with the flags: %w", err)
			}
			df.selfBlend = setup.SelfBlend(cfg)
			s, err := loadFeatures(ctx, cfg, df, stderr)
			if err != nil {
				return err
			}
			defer s.Close()
			if out == "" {
				out = filepath.Join(cfg.StateDir, "train", time.Now().UTC().Format("20060102T150405Z"))
			}
			bar := progress.New(stderr, "train")
			fold := 0
			opts.Out, opts.Install, opts.Compare, opts.Began = out, doInstall, compare, began
			opts.Backbone, opts.Source = s.BackboneInfo(cfg.Model.Backbone), s.Source
			opts.OpenHead = func(path string) (gate.Head, error) { return s.OpenHead(path) }
			if gs := setup.GateSet(cfg); (doInstall || compare || opts.Mix) && gs != "" {
				// Read like the data (same crop), with a cache of its own: the
				// data's is held open, and its lock is per open file.
				g, err := loadFeatures(ctx, cfg, dataFlags{data: gs, crop: setup.GateSetCrop(cfg, df.crop), cache: filepath.Join(cmp.Or(df.cache, featureset.CacheDir(cfg)), "gate-set")}, stderr)
				if err != nil {
					return fmt.Errorf("train.gate_set: %w", err)
				}
				defer g.Close()
				opts.GateSet = g.Dataset
			}
			opts.HeldOut = func(held, total int) {
				fmt.Fprintf(stderr, "holding out %d of %d images (train.holdout %g) to compare with the installed head\n", held, total, opts.Holdout)
			}
			opts.Progress = func(p train.Progress) {
				if p.Fold != fold { // each fit gets its own rate
					bar.Done()
					fold = p.Fold
				}
				what := "final"
				if p.Folds > 0 {
					what = fmt.Sprintf("fold %d/%d", p.Fold, p.Folds)
				}
				bar.Update((p.Epoch-1)*p.Steps+p.Step, p.Epochs*p.Steps, p.ETA, fmt.Sprintf("%s epoch %d/%d loss %.4f", what, p.Epoch, p.Epochs, p.Loss))
			}
			r, err := workflow.Run(ctx, s.Dataset, opts)
			bar.Done()
			if err != nil {
				return err
			}
			r.WriteOutcome(stdout)
			var refused error
			if g := r.Gate; g != nil && !g.CompareOnly && !g.Replaced {
				refused = &exitError{code: exitGateRefused, err: fmt.Errorf("validation gate refused the new head: %s", g.Reason)}
			}
			if err := r.WriteTable(stdout); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s (%s, %s, %s, %s)\n", out, workflow.HeadFile, workflow.MetricsFile, workflow.ConfusionFile, workflow.ROCFile)
			return refused
		},
	}
	df.register(cmd)
	d := config.DefaultTrain()
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "output folder (default <state_dir>/train/<UTC timestamp>)")
	f.BoolVar(&doInstall, "install", false, "install the new head over model.head if the validation gate passes (exit 3 if not)")
	f.BoolVar(&compare, "compare", false, "hold out and score the new and the installed head as --install does, and install nothing")
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
	f.IntVar(&selfBlend, "self-blend", d.SelfBlend, "self-blended fakes to make of each real image (bare --self-blend: 2), so real faces alone can train; overrides train.self_blend")
	f.Lookup("self-blend").NoOptDefVal = "2"
	f.StringVar(&mix, "mix", d.Mix, "mix the new head with the installed one so it keeps what that one knew: auto (with --self-blend), always or never; overrides train.mix")
	return cmd
}
