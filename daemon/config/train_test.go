package config_test

import (
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/config"
)

func TestTrainSection(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(t *testing.T, c *config.Config)
		wantErr    string
	}{
		{name: "defaults", check: func(t *testing.T, c *config.Config) {
			want := config.DefaultTrain()
			want.Dataset, want.Collect.Dir = "/var/lib/deepfaked/dataset", "/var/lib/deepfaked/collect"
			if c.Train != want {
				t.Errorf("train = %+v, want %+v", c.Train, want)
			}
		}},
		{name: "set keys override", yaml: "train:\n  lr: 0.0005\n  epochs: 20\n  seed: 7\n  l1: 0\n  holdout: 0.3\n  gate_margin: 0.01\n  class_weights: none\n",
			check: func(t *testing.T, c *config.Config) {
				want := config.DefaultTrain()
				want.LR, want.Epochs, want.Seed, want.L1, want.Holdout, want.GateMargin, want.ClassWeights = 0.0005, 20, 7, 0, 0.3, 0.01, config.ClassWeightsNone
				want.Dataset, want.Collect.Dir = c.Train.Dataset, c.Train.Collect.Dir
				if c.Train != want {
					t.Errorf("train = %+v, want %+v", c.Train, want)
				}
			}},
		{name: "unknown class weights", yaml: "train:\n  class_weights: inverse\n", wantErr: "train.class_weights"},
		{name: "zero lr", yaml: "train:\n  lr: 0\n", wantErr: "train.lr"},
		{name: "batch of one", yaml: "train:\n  batch_size: 1\n", wantErr: "train.batch_size"},
		{name: "dropout 1", yaml: "train:\n  dropout: 1\n", wantErr: "train.dropout"},
		{name: "one fold", yaml: "train:\n  folds: 1\n", wantErr: "train.folds"},
		{name: "holdout too big", yaml: "train:\n  holdout: 0.9\n", wantErr: "train.holdout"},
		{name: "too few faces to teach", yaml: "train:\n  teach:\n    faces: 19\n", wantErr: "train.teach.faces: must be 20..100000, got 19"},
		{name: "teach every 0th face", yaml: "train:\n  teach:\n    every_n: 0\n", wantErr: "train.teach.every_n"},
		{name: "unknown mix", yaml: "train:\n  mix: sometimes\n", wantErr: "train.mix"},
		{name: "unknown gate set crop", yaml: "train:\n  gate_set_crop: faces\n", wantErr: "train.gate_set_crop"},
		{name: "negative self-blend", yaml: "train:\n  self_blend: -1\n", wantErr: "train.self_blend: must be 0..100, got -1"},
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
