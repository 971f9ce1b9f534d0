package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/train/install"
)

func newRollbackCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Put back the head that 'train --install' replaced",
		Long: `Swap model.head and <head>.prev (the head 'train --install' replaced), each
atomically, so a running daemon sees one whole head or the other. Running
rollback again swaps them back. Fails when there is no <head>.prev.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if err := install.Rollback(cfg.Model.Head); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back %s to the previous head; the replaced one is now %s\n", cfg.Model.Head, install.PrevPath(cfg.Model.Head))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/deepfaked/deepfaked.yaml", "configuration file (model.head)")
	return cmd
}
