package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replaced by the real command.
func newGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get",
		Short: "not built yet",
		RunE:  func(*cobra.Command, []string) error { return errors.New("get: not built yet") },
	}
}
