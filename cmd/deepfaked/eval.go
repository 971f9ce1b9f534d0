package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/features"
	"github.com/deepfaked/deepfaked/train/workflow"
)

func newEvalCmd() *cobra.Command {
	var (
		df          dataFlags
		asJSON      bool
		predictions string
	)
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Score the installed model (backbone + head) on a labelled folder of face images",
		Long: `Score the configured backbone and head on a labelled folder (the layout of
'deepfaked train'), at model.threshold if set, else the threshold stored in the
head, else 0.5. Features come from the same cache as train's.

--json prints one object: n, accuracy, precision, recall, f1, auc, log_loss,
threshold, confusion ([[tn, fp], [fn, tp]], fake is positive).
--predictions writes path,label,p_fake for every image.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := config.Load(df.config)
			if err != nil {
				return err
			}
			s, err := loadFeatures(ctx, cfg, df, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer s.Close()
			head, err := infer.LoadHead(s.eng, cfg.Model.Head, s.backbone.FeatureSize())
			if err != nil {
				return err
			}
			defer head.Close()
			ev, err := workflow.Eval(ctx, s.Dataset, head, setup.Threshold(cfg))
			if err != nil {
				return err
			}
			if predictions != "" {
				if err := writePredictions(predictions, s.Dataset.Samples, ev.Scores); err != nil {
					return err
				}
			}
			out, m := cmd.OutOrStdout(), ev.Metrics
			if asJSON {
				return json.NewEncoder(out).Encode(m)
			}
			fmt.Fprintf(out, "head %s on %s (%d images)\n", head.ID(), df.data, m.N)
			fmt.Fprintf(out, "accuracy %.4f  precision %.4f  recall %.4f  F1 %.4f  ROC-AUC %s  log loss %.4f  threshold %.3f\n",
				m.Accuracy, m.Precision, m.Recall, m.F1, fmtAUC(m.AUC), m.LogLoss, m.Threshold)
			c := m.Confusion
			fmt.Fprintf(out, "confusion (rows true, columns predicted):\n          real  fake\n  real  %5d %5d\n  fake  %5d %5d\n", c[0][0], c[0][1], c[1][0], c[1][1])
			return nil
		},
	}
	df.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object with the metrics")
	cmd.Flags().StringVar(&predictions, "predictions", "", "write a CSV path,label,p_fake for every image")
	return cmd
}

func writePredictions(path string, samples []features.Sample, scores []float64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("predictions: %w", err)
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"path", "label", "p_fake"})
	for i, s := range samples {
		label := "real"
		if s.Label == train.Fake {
			label = "fake"
		}
		_ = w.Write([]string{s.Path, label, strconv.FormatFloat(scores[i], 'g', 6, 64)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("predictions %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("predictions %s: %w", path, err)
	}
	return nil
}
