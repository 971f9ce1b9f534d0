package main

import (
	"errors"
	"fmt"
	"io/fs"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train/collect"
)

func newLabelCmd() *cobra.Command {
	var (
		cfgPath, camera, path, label, dataset string
		frame                                 int64
		list                                  bool
	)
	cmd := &cobra.Command{
		Use:   "label (--camera C --frame N | --path FILE) --label real|fake",
		Short: "Label face crops the daemon collected, for training the head",
		Long: `Move the face crops the daemon collected from a camera's frame (every face of
it), or one crop file, from train.collect.dir (<state_dir>/collect) into the data folder
(train.dataset, <state_dir>/dataset by default) under real/ or fake/, and list them in its
labels.csv, which 'deepfaked train --data' reads. The crops of one face track
share an identity (camera/run-track; crops that name no track, those of one
camera within 10 minutes), so cross-validation keeps near-duplicates together.
When a frame number was collected more than once (the daemon restarted), the
newest capture is labelled. --list shows the crops waiting for a label, newest
first. Run it as the daemon's user (sudo -u deepfaked) or as root.`,
		Example: `  deepfaked label --list
  deepfaked label --camera cam1 --frame 1234 --label fake
  deepfaked label --path /var/lib/deepfaked/collect/cam1/000000001234-1764331201533270114-00.jpg --label real`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			folders := setup.LabelFolders(cfg)
			if dataset != "" {
				folders.Dataset = dataset
			}
			byFrame := cmd.Flags().Changed("camera") || cmd.Flags().Changed("frame")
			switch {
			case list && (byFrame || path != "" || label != ""):
				return errors.New("--list takes no --camera, --frame, --path or --label")
			case list:
				return listCrops(cmd, folders.Collect)
			case byFrame && path != "":
				return errors.New("give either --camera and --frame, or --path")
			case byFrame && (camera == "" || !cmd.Flags().Changed("frame")):
				return errors.New("--camera and --frame go together")
			case !byFrame && path == "":
				return errors.New("say which crops: --camera C --frame N, or --path FILE (--list shows them)")
			case label == "":
				return errors.New("--label real or --label fake is required")
			}
			var moved []string
			if byFrame {
				moved, err = folders.Label(camera, frame, label)
			} else {
				moved, err = folders.LabelPath(path, label)
			}
			for _, p := range moved { // also those moved before an error
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "labelled %d crop(s) %s in %s\n", len(moved), label, folders.Dataset)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (state_dir)")
	f.StringVar(&camera, "camera", "", "camera name, as in verdicts")
	f.Int64Var(&frame, "frame", 0, "frame number, as in verdicts")
	f.StringVar(&path, "path", "", "one collected crop (.jpg or its .json sidecar)")
	f.StringVar(&label, "label", "", "real or fake")
	f.StringVar(&dataset, "dataset", "", "data folder to move labelled crops into (default <state_dir>/dataset)")
	f.BoolVar(&list, "list", false, "list the collected crops not yet labelled, newest first")
	return cmd
}

func listCrops(cmd *cobra.Command, collectDir string) error {
	crops, err := collect.List(collectDir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(cmd.ErrOrStderr(), "no crops collected: %s does not exist\n", collectDir)
		return nil
	}
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CAMERA\tFRAME\tFACE\tP_FAKE\tTIME\tPATH")
	for _, c := range crops {
		fmt.Fprintf(w, "%s\t%d\t%d\t%.3f\t%s\t%s\n", c.Meta.Camera, c.Meta.Frame, c.Meta.Face, c.Meta.PFake,
			c.Meta.TS.Format(time.RFC3339Nano), c.Path)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d crop(s) waiting for a label in %s\n", len(crops), collectDir)
	return nil
}
