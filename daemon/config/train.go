package config

import "github.com/deepfaked/deepfaked/train"

// Train holds the head-training hyperparameters of `deepfaked train` (the
// reference recipe by default) and the validation gate of `train --install`.
// Command-line flags override them.
type Train struct {
	LR          float64 `yaml:"lr"`
	BatchSize   int     `yaml:"batch_size"`
	L1          float64 `yaml:"l1"`
	WeightDecay float64 `yaml:"weight_decay"`
	Epochs      int     `yaml:"epochs"`
	Dropout     float64 `yaml:"dropout"`
	Folds       int     `yaml:"folds"`
	Patience    int     `yaml:"patience"`
	Seed        int     `yaml:"seed"`
	// ClassWeights is train.ClassWeightsBalanced or train.ClassWeightsNone.
	ClassWeights string `yaml:"class_weights"`
	// GateMargin is how much lower than the installed head's AUC on the
	// held-out examples a new head's may be and still be installed.
	GateMargin float64 `yaml:"gate_margin"`
	// Holdout is the fraction of the examples (stratified, grouped by
	// identity) that `train --install` keeps out of training to compare heads.
	Holdout float64 `yaml:"holdout"`
	// Dataset is the labelled folder that `deepfaked label` and the MQTT label
	// command fill and the nightly training reads; default <state_dir>/dataset.
	Dataset string `yaml:"dataset"`
	// Collect saves face crops from the cameras for labelling.
	Collect Collect `yaml:"collect"`
}

// DefaultHoldout is train.holdout's default.
const DefaultHoldout = 0.2

// DefaultTrain is the train: section when the file has none: train.DefaultConfig.
func DefaultTrain() Train {
	d := train.DefaultConfig()
	cw := train.ClassWeightsNone
	if d.ClassWeights {
		cw = train.ClassWeightsBalanced
	}
	return Train{LR: d.LR, BatchSize: d.BatchSize, L1: d.L1, WeightDecay: d.WeightDecay, Epochs: d.Epochs,
		Dropout: d.Dropout, Folds: d.Folds, Patience: d.Patience, Seed: int(d.Seed), ClassWeights: cw, Holdout: DefaultHoldout,
		Collect: Collect{MaxFiles: DefaultCollectMaxFiles, JPEGQuality: DefaultJPEGQuality}}
}

// Config is the train package's configuration.
func (t Train) Config() train.Config {
	return train.Config{LR: t.LR, L1: t.L1, WeightDecay: t.WeightDecay, Dropout: t.Dropout, BatchSize: t.BatchSize,
		Epochs: t.Epochs, Patience: t.Patience, Folds: t.Folds, Seed: int64(t.Seed),
		ClassWeights: t.ClassWeights == train.ClassWeightsBalanced}
}

func (t *Train) check(k checker) {
	t.Collect.check(k)
	if !(t.LR > 0 && t.LR <= 1) {
		k.fail("train.lr", "must be above 0 and at most 1, got %g", t.LR)
	}
	k.atLeast("train.batch_size", t.BatchSize, 2)
	k.between("train.l1", t.L1, 0, 1)
	k.between("train.weight_decay", t.WeightDecay, 0, 1)
	k.atLeast("train.epochs", t.Epochs, 1)
	if !(t.Dropout >= 0 && t.Dropout < 1) {
		k.fail("train.dropout", "must be at least 0 and below 1, got %g", t.Dropout)
	}
	k.atLeast("train.folds", t.Folds, 2)
	k.atLeast("train.patience", t.Patience, 0)
	k.oneOf("train.class_weights", t.ClassWeights, []string{train.ClassWeightsBalanced, train.ClassWeightsNone})
	k.between("train.gate_margin", t.GateMargin, 0, 1)
	if !(t.Holdout > 0 && t.Holdout <= 0.5) {
		k.fail("train.holdout", "must be above 0 and at most 0.5, got %g", t.Holdout)
	}
}
