// Package train fits the small classification head on frozen backbone
// features: the model (BatchNorm1d → Dropout → Linear(D,2)) with hand-written
// forward and backward passes, Adam, stratified grouped k-fold, early stopping,
// metrics, plots and the ONNX export of the trained head.
package train

import "fmt"

// Config holds the training hyperparameters. Their defaults are the
// config's (daemon/config.DefaultTrain, turned into a Config by setup).
type Config struct {
	LR          float64 // Adam learning rate
	L1          float64 // L1 penalty on the Linear weights: L1·Σ|W|
	WeightDecay float64 // Adam's L2 weight_decay (grad += wd·param for every parameter)
	Dropout     float64 // dropout probability before the Linear; 0 turns it off
	BatchSize   int
	Epochs      int // maximum epochs
	Patience    int // epochs without a better validation loss before stopping; 0 never stops early
	Folds       int // k in stratified grouped k-fold
	Seed        int64
	// ClassWeights weights the cross-entropy by n/(2·n_class) of the training
	// samples ("balanced"), so the minority class is not ignored.
	ClassWeights bool
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case !(c.LR > 0):
		return fmt.Errorf("train config: lr must be > 0, got %g", c.LR)
	case c.L1 < 0:
		return fmt.Errorf("train config: l1 must be >= 0, got %g", c.L1)
	case c.WeightDecay < 0:
		return fmt.Errorf("train config: weight_decay must be >= 0, got %g", c.WeightDecay)
	case c.Dropout < 0 || c.Dropout >= 1:
		return fmt.Errorf("train config: dropout must be in [0,1), got %g", c.Dropout)
	case c.BatchSize < 2:
		return fmt.Errorf("train config: batch_size must be >= 2 (BatchNorm needs 2 samples), got %d", c.BatchSize)
	case c.Epochs < 1:
		return fmt.Errorf("train config: epochs must be >= 1, got %d", c.Epochs)
	case c.Patience < 0:
		return fmt.Errorf("train config: patience must be >= 0, got %d", c.Patience)
	case c.Folds < 2:
		return fmt.Errorf("train config: folds must be >= 2, got %d", c.Folds)
	}
	return nil
}
