package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replaced by the real command.
func newBootstrapAgentCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bootstrap-agent",
		Short: "not built yet",
		RunE:  func(*cobra.Command, []string) error { return errors.New("bootstrap-agent: not built yet") },
	}
}
