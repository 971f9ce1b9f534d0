package config_test

import (
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/train"
)

func TestTrainSection(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(t *testing.T, c *config.Config)
		wantErr    string
	}{
		{name: "defaults are train.DefaultConfig", check: func(t *testing.T, c *config.Config) {
			want := train.DefaultConfig()
			if got := c.Train.Config(); got != want {
				t.Errorf("train config = %+v, want %+v", got, want)
			}
			if c.Train.Holdout != config.DefaultHoldout || c.Train.GateMargin != 0 {
				t.Errorf("holdout %g gate_margin %g, want %g and 0", c.Train.Holdout, c.Train.GateMargin, config.DefaultHoldout)
			}
		}},
		{name: "set keys override", yaml: "train:\n  lr: 0.0005\n  epochs: 20\n  seed: 7\n  l1: 0\n  holdout: 0.3\n  gate_margin: 0.01\n",
			check: func(t *testing.T, c *config.Config) {
				tc := c.Train.Config()
				if tc.LR != 0.0005 || tc.Epochs != 20 || tc.Seed != 7 || tc.L1 != 0 || tc.BatchSize != train.DefaultConfig().BatchSize {
					t.Errorf("train config = %+v", tc)
				}
				if c.Train.Holdout != 0.3 || c.Train.GateMargin != 0.01 {
					t.Errorf("holdout %g gate_margin %g", c.Train.Holdout, c.Train.GateMargin)
				}
			}},
		{name: "no class weights", yaml: "train:\n  class_weights: none\n", check: func(t *testing.T, c *config.Config) {
			if c.Train.Config().ClassWeights {
				t.Errorf("class_weights none gave balanced weights")
			}
		}},
		{name: "unknown class weights", yaml: "train:\n  class_weights: inverse\n", wantErr: "train.class_weights"},
		{name: "zero lr", yaml: "train:\n  lr: 0\n", wantErr: "train.lr"},
		{name: "batch of one", yaml: "train:\n  batch_size: 1\n", wantErr: "train.batch_size"},
		{name: "dropout 1", yaml: "train:\n  dropout: 1\n", wantErr: "train.dropout"},
		{name: "one fold", yaml: "train:\n  folds: 1\n", wantErr: "train.folds"},
		{name: "holdout too big", yaml: "train:\n  holdout: 0.9\n", wantErr: "train.holdout"},
		{name: "fractional epochs", yaml: "train:\n  epochs: 2.5\n", wantErr: "train.epochs"},
		{name: "unknown key", yaml: "train:\n  learning_rate: 0.1\n", wantErr: `unknown key "train.learning_rate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte(minimal+tc.yaml), "/etc/deepfaked")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
