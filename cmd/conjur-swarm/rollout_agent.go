package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/rollout"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

// defaultRolloutStatusSocket is where the rollout agent answers `status`,
// inside its container.
const defaultRolloutStatusSocket = "/run/conjur-swarm-rollout.sock"

// rolloutSettings are the settings (settings.go) the rollout agent reads
// besides Conjur's own: the same variables and flags as the plugin's.
var rolloutSettings = []string{"mapping_file", "credential_file", "log_level", "log_format", "fetch_timeout", "allow_http"}

// rolloutFlags are the rollout agent's own flags.
type rolloutFlags struct {
	interval, minGap time.Duration
	dryRun           bool
	drivers          []string
	dockerSocket     string
	statusSocket     string
}

func newRolloutAgentCmd() *cobra.Command {
	var fl rolloutFlags
	cmd := &cobra.Command{
		Use:   "rollout-agent [flags]",
		Short: "Roll the services that opt in (conjur.rollout=true) when a variable they read changes in Conjur",
		Long: `Watch the Conjur versions of the variables that opted-in services read through
the secret driver, and start a rolling update of a service (as
docker service update --force does, with the service's own update_config)
when one of them changes, so that its new tasks fetch the new value.

A service opts in with the service label conjur.rollout=true. Each of its
driver secrets is resolved through the mapping file exactly as the plugin
would. Versions come from Conjur's resource metadata, never a value: the
agent's identity needs read on the variables, not execute. The first pass
after start only records the versions; a service is rolled at most once per
--min-gap and never while it is updating. --dry-run logs what it would do.

Run it as one replica on a manager with the Docker socket, the mapping
directory and its own Conjur credential (see docs/rotation.md). Conjur's
settings are the plugin's variables (CONJUR_APPLIANCE_URL, CONJUR_ACCOUNT,
CONJUR_AUTHN_LOGIN, CONJUR_CERT_FILE, ...), with the credential in
CONJUR_SWARM_CREDENTIAL_FILE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := viper.New()
			if err := bindSettings(v, cmd.Flags()); err != nil {
				return err
			}
			cfg, err := loadConfig(v)
			if err != nil {
				return fmt.Errorf("the settings are invalid:\n%w", err)
			}
			return runRolloutAgent(cmd.Context(), cfg, fl)
		},
	}
	f := cmd.Flags()
	addSettingFlags(f, rolloutSettings...)
	f.DurationVar(&fl.interval, "interval", rollout.DefaultInterval, "how often to read the variables' versions")
	f.DurationVar(&fl.minGap, "min-gap", rollout.DefaultMinGap, "least time between two rollouts of one service")
	f.BoolVar(&fl.dryRun, "dry-run", false, "log what would be rolled out and change nothing")
	f.StringArrayVar(&fl.drivers, "driver", []string{defaultDriver}, "the plugin's name as secrets name their driver (repeatable)")
	f.StringVar(&fl.dockerSocket, "docker-socket", swarmapi.DefaultSocket, "the Docker Engine's unix socket")
	f.StringVar(&fl.statusSocket, "status-socket", defaultRolloutStatusSocket, "unix socket where the agent answers the status command")
	cmd.AddCommand(newRolloutStatusCmd())
	return cmd
}

func runRolloutAgent(ctx context.Context, cfg Config, fl rolloutFlags) error {
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.Named("rollout")

	ca, err := cfg.Conjur.caPEM()
	if err != nil {
		return err
	}
	client, err := conjur.New(cfg.conjurConfig(ca), log.Named("conjur"))
	if err != nil {
		return fmt.Errorf("the Conjur settings are incomplete or invalid:\n%w", err)
	}
	defer func() { _ = client.Close() }()

	docker := swarmapi.New(fl.dockerSocket)
	defer docker.Close()
	mappingFile := cfg.MappingFile
	agent, err := rollout.New(rollout.Options{
		Docker:   docker,
		Versions: client,
		Policy: func() (*policy.Policy, error) {
			if mappingFile == "" {
				return policy.Builtin(), nil
			}
			return policy.ParseFile(mappingFile)
		},
		Account:  cfg.Conjur.Account,
		Drivers:  rollout.NewDrivers(fl.drivers...),
		Interval: fl.interval,
		MinGap:   fl.minGap,
		DryRun:   fl.dryRun,
		Logger:   log,
	})
	if err != nil {
		return err
	}
	ln, err := rollout.ListenStatus(fl.statusSocket)
	if err != nil {
		return err
	}
	statusDone := make(chan error, 1)
	sctx, stopStatus := context.WithCancel(ctx)
	go func() { statusDone <- agent.ServeStatus(sctx, ln) }()
	defer func() {
		stopStatus()
		<-statusDone
	}()

	log.Info("rollout agent started",
		zap.String("version", version),
		zap.Duration("interval", fl.interval), zap.Duration("min_gap", fl.minGap), zap.Bool("dry_run", fl.dryRun),
		zap.Strings("drivers", fl.drivers), zap.String("docker_socket", fl.dockerSocket),
		zap.String("mapping_file", mappingFile), zap.String("status_socket", fl.statusSocket),
		zap.String("account", cfg.Conjur.Account), zap.String("login", cfg.Conjur.Login))
	if err := agent.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("rollout agent stopped")
	return nil
}

func newRolloutStatusCmd() *cobra.Command {
	var socket, output string
	cmd := &cobra.Command{
		Use:   "status [--socket PATH] [-o json]",
		Short: "Show the rollout agent's watched services, variables, versions, last rollouts and errors",
		Long: `Ask a running rollout agent for its state. Run it inside the agent's container:

  docker exec $(docker ps -q -f label=com.docker.swarm.service.name=conjur-rollout) \
    /conjur-swarm rollout-agent status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			st, err := rollout.FetchStatus(ctx, socket)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeIndentedJSON(cmd.OutOrStdout(), st)
			}
			return writeRolloutStatus(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultRolloutStatusSocket, "the agent's status socket")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func writeRolloutStatus(w io.Writer, st rollout.Status) error {
	var b strings.Builder
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	mode := ""
	if st.DryRun {
		mode = ", dry-run (changes nothing)"
	}
	fmt.Fprintf(&b, "rollout agent: started %s, last pass %s, interval %s, min-gap %s%s\n",
		ts(st.Started), ts(st.LastPass), st.Interval, st.MinGap, mode)
	if !st.Primed {
		b.WriteString("no pass has recorded the versions yet: nothing is rolled out before one has\n")
	}
	if st.Error != nil {
		fmt.Fprintf(&b, "error: [%s] %s (since %s)\n", st.Error.Code, st.Error.Message, ts(st.Error.Since))
	}
	if len(st.Services) == 0 {
		b.WriteString("no service opted in (label conjur.rollout=true) reads a driver secret\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tVARIABLE\tVERSION\tROLLED\tSECRETS")
		for _, s := range st.Services {
			if len(s.Variables) == 0 {
				fmt.Fprintf(tw, "%s\t(none watched)\t\t\t\n", s.Name)
			}
			for _, v := range s.Variables {
				ver := "?"
				if v.Version > 0 {
					ver = fmt.Sprint(v.Version)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Name, v.ID, ver, v.Rolled, strings.Join(v.Secrets, ","))
			}
		}
		_ = tw.Flush()
		for _, s := range st.Services {
			if r := s.LastRollout; r != nil {
				changes := make([]string, len(r.Changes))
				for i, c := range r.Changes {
					changes[i] = c.String()
				}
				dry := ""
				if r.DryRun {
					dry = " (dry-run)"
				}
				fmt.Fprintf(&b, "%s: last rollout %s%s: %s (%s)\n", s.Name, ts(r.At), dry, strings.Join(changes, ", "), r.Reason)
			}
			if s.Pending != "" {
				fmt.Fprintf(&b, "%s: rollout due, waiting: %s\n", s.Name, s.Pending)
			}
		}
	}
	for _, p := range st.Problems {
		fmt.Fprintf(&b, "problem: [%s] %s\n", p.Code, p.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
