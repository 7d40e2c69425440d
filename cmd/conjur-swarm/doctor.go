package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/rollout"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

// relabelled is one row of `doctor`: a driver secret whose stack label
// disagrees with its name.
type relabelled struct {
	Secret string `json:"secret"`
	Label  string `json:"label"` // its com.docker.stack.namespace
	Repair string `json:"repair"`
}

func newDoctorCmd() *cobra.Command {
	var (
		socket, output string
		drivers        []string
	)
	cmd := &cobra.Command{
		Use:   "doctor [--driver NAME]... [-o json]",
		Short: "List the plugin's secrets that another stack's file relabelled, with the commands that repair them (run on a manager)",
		Long: `Read the swarm's secrets from the Docker Engine and list every secret of the
driver whose stack label (com.docker.stack.namespace) its name does not start
with ("<label>_"): another stack's file named it (name: under secrets:) and its
deploy relabelled it. Rules that read the owner from the label ({stack},
{secret_key}) then refuse the owner's tasks. Each comes with the commands that
repair it. Exit status 1 when any is found, 0 when none.

conjur-swarm status lists the same secrets, but only once a task asked for
them; doctor finds them all, before any task does.`,
		Example: `  conjur-swarm doctor`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			secrets, err := swarmapi.New(socket).Secrets(ctx)
			if err != nil {
				return fmt.Errorf("listing the swarm's secrets: %w", err)
			}
			rows := findRelabelled(secrets, rollout.NewDrivers(drivers...))
			if output == "json" {
				err = writeIndentedJSON(cmd.OutOrStdout(), rows)
			} else {
				err = writeRelabelled(cmd.OutOrStdout(), rows)
			}
			if err == nil && len(rows) > 0 {
				return exitError{code: 1}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&drivers, "driver", []string{defaultDriver}, "the plugin's name as secrets name their driver (repeatable)")
	f.StringVar(&socket, "docker-socket", swarmapi.DefaultSocket, "the Docker Engine's unix socket")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// findRelabelled returns the secrets of drivers whose stack label disagrees
// with their name, in the engine's order.
func findRelabelled(secrets []swarmapi.Secret, drivers rollout.Drivers) []relabelled {
	rows := []relabelled{}
	for _, s := range secrets {
		if !drivers.Has(s.Driver) {
			continue
		}
		if label := policy.StackLabelMismatch(s.Name, s.Labels); label != "" {
			rows = append(rows, relabelled{Secret: s.Name, Label: label, Repair: repairRelabelled(s.Name, label)})
		}
	}
	return rows
}

func writeRelabelled(w io.Writer, rows []relabelled) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no secret of the plugin carries another stack's label")
		return err
	}
	fmt.Fprintf(w, "%d secret(s) carry a stack label that their name does not start with:\n", len(rows))
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "  %s: label com.docker.stack.namespace=%s\n    repair: %s\n", r.Secret, r.Label, r.Repair); err != nil {
			return err
		}
	}
	return nil
}

// repairRelabelled says how to undo the relabelling of secret into stack
// label: take the secret out of that stack's file, then deploy the owner's
// stack again, which sets the label back. The owner is guessed as the name
// before its first "_".
func repairRelabelled(secret, label string) string {
	owner, _, ok := strings.Cut(secret, "_")
	if !ok {
		owner = "OWNER"
	}
	return fmt.Sprintf("remove %q from stack %s's file and run docker stack deploy -c FILE %s; then run docker stack deploy -c FILE %s with the file of the stack the secret belongs to (%s?), which sets its label back",
		"name: "+secret, label, label, owner, owner)
}
