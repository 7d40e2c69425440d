package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "conjur-swarm",
		Short:         "Docker Swarm secret driver backed by CyberArk Conjur",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCmd(),
		newServeCmd(),
		newDevServerCmd(),
		newPolicyCmd(),
		newGetCmd(),
		newStatusCmd(),
		newBootstrapAgentCmd(),
		newServicesUsingCmd(),
		newDoctorCmd(),
		newRolloutAgentCmd(),
		newJWKSCmd(),
		newSBOMCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of conjur-swarm",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "conjur-swarm %s (revision %s)\n", version, rev)
			return err
		},
	}
}
