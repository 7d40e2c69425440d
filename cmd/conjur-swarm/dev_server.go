package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replaced by the real command.
func newDevServerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dev-server",
		Short: "not built yet",
		RunE:  func(*cobra.Command, []string) error { return errors.New("dev-server: not built yet") },
	}
}
