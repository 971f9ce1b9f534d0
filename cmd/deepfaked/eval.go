package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/evalvideo"
	"github.com/deepfaked/deepfaked/train/workflow"
)

func newEvalCmd() *cobra.Command {
	var (
		df          dataFlags
		asJSON      bool
		predictions string
		roc         string
		vo          videoEvalOptions
		views       string
	)
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Score the installed model (backbone + head) on labelled face images or videos",
		Long: `Score the configured backbone and head on a labelled folder (the layout of
'deepfaked train'), at model.threshold if set, else the threshold stored in the
head, else 0.5. Features come from the same cache as train's.

--json prints one object: n, accuracy, precision, recall, f1, auc, log_loss,
threshold, confusion ([[tn, fp], [fn, tp]], fake is positive).
--predictions writes path,label,p_fake for every image.
--roc draws the ROC curve as a PNG.

--views LIST scores each crop of --data as it is and changed as a face
detector and a camera change it (all, or some of mirror, shift2.3, shift8,
scale90, scale110, jpeg50: shifts at a 128 px input, borders reflected),
through the configured backbone, head and model.tta (no feature cache):
each view's ROC-AUC, accuracy and F1, and against the crop as it is the
share of verdicts it changes (also among faces scored at least 0.3 from
the threshold) and the median and 90th percentile of |change in p_fake|.

--videos DIR scores labelled videos instead (DIR/real/* and DIR/fake/*, or
DIR/labels.csv) with the daemon's own pipeline: each video is a camera, read
at --fps frames per second of video time, with the configured face detector,
preprocessing, model and threshold, and its face tracks (tracks.*). Each video
gets one score per rule, side by side: frame_mean (the mean over frames with a
face of the frame's p_fake), and the track rules mean, confident and ema (the
most fake track with at least tracks.min_frames frames, or of all tracks when
none is that long). Videos with no face, or that cannot be read, are listed
and left out of the metrics; eval fails only when no video can be read.
--json prints videos, scored, no_face, unreadable, fps, threshold, rule (the
configured tracks.rule), min_frames, and metrics: for each score the keys
above. --predictions writes video,label,frames,faces,tracks,frame_mean,mean,
confident,ema,predicted (the label under tracks.rule). --roc draws one ROC
panel per score.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if vo.dir != "" {
				if imageOnly := changedFlags(cmd, "crop", "cache", "features-out"); len(imageOnly) > 0 {
					return errNoVideoFlags(imageOnly)
				}
				vo.config, vo.predictions, vo.roc, vo.json = df.config, predictions, roc, asJSON
				return evalVideos(ctx, vo, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			if cmd.Flags().Changed("fps") || cmd.Flags().Changed("jobs") {
				return errors.New("--fps and --jobs apply to --videos only")
			}
			if views != "" {
				if other := changedFlags(cmd, "crop", "cache", "features-out", "predictions", "roc"); len(other) > 0 {
					return fmt.Errorf("%s cannot be used with --views", strings.Join(other, ", "))
				}
				return evalViews(ctx, df.config, df.data, views, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			cfg, err := config.Load(df.config)
			if err != nil {
				return err
			}
			if cfg.Model.TTA != config.TTANone {
				// Image scores come from cached features of the crops as they are.
				fmt.Fprintf(cmd.ErrOrStderr(), "eval: model.tta %s is not applied to --data (--videos applies it)\n", cfg.Model.TTA)
			}
			s, err := loadFeatures(ctx, cfg, df, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer s.Close()
			head, err := s.OpenHead(cfg.Model.Head)
			if err != nil {
				return err
			}
			defer head.Close()
			ev, err := workflow.Eval(ctx, s.Dataset, head, setup.Threshold(cfg))
			if err != nil {
				return err
			}
			if predictions != "" {
				if err := workflow.WritePredictions(predictions, s.Dataset.Samples, ev.Scores); err != nil {
					return err
				}
			}
			if roc != "" {
				if err := train.WriteROCPNG(roc, train.Labels(s.Dataset), ev.Scores); err != nil {
					return err
				}
			}
			out, m := cmd.OutOrStdout(), ev.Metrics
			if asJSON {
				return json.NewEncoder(out).Encode(m)
			}
			fmt.Fprintf(out, "head %s on %s (%d images)\n", head.ID(), df.data, m.N)
			fmt.Fprintf(out, "accuracy %.4f  precision %.4f  recall %.4f  F1 %.4f  ROC-AUC %s  log loss %.4f  threshold %.3f\n",
				m.Accuracy, m.Precision, m.Recall, m.F1, train.FormatAUC(m.AUC), m.LogLoss, m.Threshold)
			c := m.Confusion
			fmt.Fprintf(out, "confusion (rows true, columns predicted):\n          real  fake\n  real  %5d %5d\n  fake  %5d %5d\n", c[0][0], c[0][1], c[1][0], c[1][1])
			return nil
		},
	}
	df.register(cmd)
	// --data is required by the flags train shares, but eval takes --videos instead.
	delete(cmd.Flags().Lookup("data").Annotations, cobra.BashCompOneRequiredFlag)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object with the metrics")
	cmd.Flags().StringVar(&predictions, "predictions", "", "write a CSV with every image's (or video's) scores")
	cmd.Flags().StringVar(&roc, "roc", "", "draw the ROC curve (with --videos: one per score) into this PNG file")
	cmd.Flags().StringVar(&vo.dir, "videos", "", "labelled folder of videos: DIR/real/* and DIR/fake/*, or DIR/labels.csv (path,label,identity); scored with the daemon's pipeline")
	cmd.Flags().Float64Var(&vo.fps, "fps", evalvideo.DefaultFPS, "with --videos: frames analysed per second of video (0: every frame)")
	cmd.Flags().StringVar(&views, "views", "", "with --data: score each crop as it is and under these views (all, or a comma list of mirror,shift2.3,shift8,scale90,scale110,jpeg50)")
	cmd.Flags().IntVar(&vo.jobs, "jobs", 4, "with --videos: videos analysed at once, as cameras of one pipeline")
	cmd.MarkFlagsOneRequired("data", "videos")
	cmd.MarkFlagsMutuallyExclusive("data", "videos")
	return cmd
}

// changedFlags are the named flags the command line set, as --name.
func changedFlags(cmd *cobra.Command, names ...string) []string {
	var set []string
	for _, f := range names {
		if cmd.Flags().Changed(f) {
			set = append(set, "--"+f)
		}
	}
	return set
}
