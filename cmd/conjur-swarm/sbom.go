package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cyberark/conjur-swarm/internal/sbom"
)

func newSBOMCmd() *cobra.Command {
	var name, created string
	cmd := &cobra.Command{
		Use:   "sbom [BINARY]",
		Short: "Print an SPDX 2.3 SBOM (JSON) of a Go binary, this one by default, from the module graph it carries",
		Long: `Describe a Go binary as an SPDX 2.3 document: the binary with its SHA-256,
the Go standard library at the toolchain's version, and every module linked
into it with its version, purl and go.sum hash, read from the build
information the Go linker records in the binary (what 'go version -m'
prints). Any architecture's binary can be read. make release writes one per
binary; an operator can ask an installed plugin's binary for its own.`,
		Example: `  id=$(docker plugin inspect -f '{{.Id}}' cyberark/conjur:latest)
  /var/lib/docker/plugins/$id/rootfs/conjur-swarm sbom > conjur-swarm.spdx.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ""
			if len(args) == 1 {
				path = args[0]
			} else {
				self, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot find this program's own file: %w; name the binary", err)
				}
				path = self
			}
			at := time.Now()
			if created != "" {
				t, err := time.Parse(time.RFC3339, created)
				if err != nil {
					return fmt.Errorf("--created %q: want an RFC 3339 time such as 2026-12-07T19:00:00Z", created)
				}
				at = t
			}
			if name == "" {
				name = filepath.Base(path)
			}
			doc, err := sbom.FromFile(path, name, at)
			if err != nil {
				return err
			}
			out, err := doc.JSON()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the binary's name in the document (default: its file name)")
	cmd.Flags().StringVar(&created, "created", "", "the document's creation time, RFC 3339 (default: now; make release passes the commit's time, so the same commit gives the same SBOM)")
	return cmd
}
