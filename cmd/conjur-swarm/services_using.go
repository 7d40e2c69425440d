package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/rollout"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

// defaultDriver is the plugin name docs/install.md installs.
const defaultDriver = "cyberark/conjur"

// serviceUse is one row of `services-using`.
type serviceUse struct {
	Service       string `json:"service"`
	Secret        string `json:"secret"`
	Rule          string `json:"rule"`
	NodeDependent bool   `json:"node_dependent,omitempty"` // the rule reads the node: the service may use it on some nodes
}

func newServicesUsingCmd() *cobra.Command {
	var (
		file, socket, output string
		drivers              []string
	)
	cmd := &cobra.Command{
		Use:   "services-using VARIABLE [-f FILE] [--driver NAME]... [-o json]",
		Short: "List the services whose driver secrets resolve to a Conjur variable (run on a manager)",
		Long: `Resolve every secret of the secret driver, for every service of the swarm,
through the mapping policy as the plugin would, and print the services whose
secrets resolve to VARIABLE: service, secret, rule. Those are the services to
roll (docker service update --force) after rotating VARIABLE in Conjur.

It reads the swarm's services and secrets from the Docker Engine (run it on a
manager, with access to the Docker socket) and makes no Conjur call. A secret
the mapping denies to a service is not listed (the plugin would not serve it).
A secret whose rule reads {node} or matches on the node cannot be resolved per
service: it is always listed, marked node-dependent, since it may use VARIABLE
on some nodes (check one with policy explain --node).

Without -f the built-in policy is used (the conjur.variable label rule); give
the mapping file the plugin uses.`,
		Example: `  conjur-swarm services-using apps/web/db-password -f /etc/conjur-swarm/mapping/mapping.yml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			p := policy.Builtin()
			if file != "" {
				var err error
				if p, err = policy.ParseFile(file); err != nil {
					printPolicyError(cmd.ErrOrStderr(), err)
					return exitError{code: 1}
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			rows, err := servicesUsing(ctx, swarmapi.New(socket), p, rollout.NewDrivers(drivers...), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeIndentedJSON(cmd.OutOrStdout(), rows)
			}
			if len(rows) == 0 {
				_, err := fmt.Fprintf(cmd.ErrOrStderr(), "no service reads %s through a secret of driver %v\n", args[0], drivers)
				return err
			}
			return writeServicesUsing(cmd.OutOrStdout(), rows)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the plugin's mapping policy file (default: the built-in policy)")
	f.StringArrayVar(&drivers, "driver", []string{defaultDriver}, "the plugin's name as secrets name their driver (repeatable)")
	f.StringVar(&socket, "docker-socket", swarmapi.DefaultSocket, "the Docker Engine's unix socket")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// swarmLister is what services-using needs of the Docker Engine.
type swarmLister interface {
	Services(ctx context.Context) ([]swarmapi.Service, error)
	Secrets(ctx context.Context) ([]swarmapi.Secret, error)
}

// servicesUsing resolves every driver secret of every service and returns
// those that read variable, plus those whose rule reads the node.
func servicesUsing(ctx context.Context, docker swarmLister, p *policy.Policy, drivers rollout.Drivers, variable string) ([]serviceUse, error) {
	services, err := docker.Services(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the swarm's services: %w", err)
	}
	secrets, err := docker.Secrets(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the swarm's secrets: %w", err)
	}
	rows := []serviceUse{}
	for _, u := range rollout.Uses(p, drivers, services, secrets) {
		row := serviceUse{Service: u.Service.Name, Secret: u.Secret.Name, Rule: u.Decision.Rule}
		switch {
		case u.NodeDependent:
			row.NodeDependent = true
		case !slices.Contains(u.Variables(), variable):
			continue
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func writeServicesUsing(w io.Writer, rows []serviceUse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSECRET\tRULE")
	for _, r := range rows {
		rule := r.Rule
		if r.NodeDependent {
			rule += " (node-dependent: may use it on some nodes)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Service, r.Secret, rule)
	}
	return tw.Flush()
}

// writeIndentedJSON writes v as indented JSON (the -o json of the commands).
func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
