package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train/install"
)

func newRollbackCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Undo the last install of a head",
		Long: `Put back the head the last 'train --install' (or the page's install)
replaced, atomically, so a running daemon sees one whole head or the other.
Each install keeps the head it replaced (the newest 10, as <head>.prev.N);
each rollback undoes one install, newest first, and the head it rolls back
from is not kept. With nothing left to undo it says so and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			signing, err := setup.Signing(cfg)
			if err != nil {
				return err
			}
			if err := install.Rollback(cfg.Model.Head, signing); err != nil {
				return err
			}
			left, err := install.Kept(cfg.Model.Head)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back %s to the head the last install replaced; %d earlier install(s) left to undo\n", cfg.Model.Head, left)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (model.head)")
	return cmd
}
