package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replaced by the real command.
func newPolicyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "policy",
		Short: "not built yet",
		RunE:  func(*cobra.Command, []string) error { return errors.New("policy: not built yet") },
	}
}
