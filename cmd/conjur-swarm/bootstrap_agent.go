package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/bootstrap"
)

func newBootstrapAgentCmd() *cobra.Command {
	var opts bootstrap.Options
	var once bool
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "bootstrap-agent [--secret-file FILE] [--plugins-dir DIR] [--interval 10s]",
		Short: "Hand the plugin's Conjur credential from a swarm secret to the plugin on this node",
		Long: `Read the credential JSON from a swarm secret:

  {"login":"host/swarm/conjur-plugin","api_key":"...","account":"myorg","appliance_url":"https://conjur.example.com"}
  {"jwt":"...","account":"myorg","appliance_url":"https://conjur.example.com"}

(appliance_url may list several URLs separated by commas), find the
conjur-swarm plugin socket(s) under the mounted /run/docker/plugins
(DIR/conjur.sock and DIR/<plugin id>/conjur.sock), and post the credential to
each plugin whose status reports that login, that account and one of those
URLs, when it holds none or another one. Plugins of another login, account or
Conjur are skipped. It keeps running and checks again every --interval; in
between it looks at the plugin sockets every --watch-interval, and hands the
credential at once to a plugin whose socket is new (enabled, restarted,
upgraded), without the back-off its predecessor earned. It logs the
credential's fingerprint, never the key; a refused fingerprint at error level
once.

Run it as a global service on the managers (see docs/install.md):

  docker service create --name conjur-bootstrap --mode global \
    --constraint node.role==manager --secret conjur-bootstrap \
    --mount type=bind,source=/run/docker/plugins,target=/run/docker/plugins \
    --network host IMAGE`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			opts.Logger = log.Named("bootstrap")
			agent, err := bootstrap.New(opts)
			if err != nil {
				return err
			}
			if once {
				res := agent.Pass(cmd.Context())
				if res.Problem != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), res.Problem)
				}
				for _, sock := range res.Sockets {
					if why, ok := res.Failed[sock]; ok {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", sock, why)
					}
					if why, ok := res.Skipped[sock]; ok {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: skipped, the credential is not for this plugin: %s\n", sock, why)
					}
				}
				if len(res.HandedTo)+len(res.Current) == 0 || len(res.Failed) > 0 {
					return errors.New("bootstrap-agent --once: not every plugin holds the credential (see above and the log)")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "credential handed to %d plugin(s), already held by %d: %s\n",
					len(res.HandedTo), len(res.Current), strings.Join(append(res.HandedTo, res.Current...), ", "))
				return nil
			}
			log.Info("bootstrap agent started", defaultFields(opts)...)
			return agent.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.SecretFile, "secret-file", "/run/secrets/conjur-bootstrap", "the swarm secret holding the credential JSON")
	fl.StringVar(&opts.PluginsDir, "plugins-dir", "/run/docker/plugins", "the host's /run/docker/plugins as mounted into the agent")
	fl.DurationVar(&opts.Interval, "interval", 10*time.Second, "how often to check the plugins")
	fl.DurationVar(&opts.WatchInterval, "watch-interval", bootstrap.DefaultWatchInterval, "how often to look for new or restarted plugin sockets (a stat of each, no call)")
	fl.DurationVar(&opts.CallTimeout, "timeout", 25*time.Second, "deadline of each call to a plugin")
	fl.BoolVar(&once, "once", false, "make one pass and exit (1 unless every plugin the credential is for holds it, and there is one)")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&logFormat, "log-format", "json", "json or console")
	return cmd
}

func defaultFields(o bootstrap.Options) []zap.Field {
	return []zap.Field{
		zap.String("secret_file", o.SecretFile),
		zap.String("plugins_dir", o.PluginsDir),
		zap.Duration("interval", o.Interval),
		zap.Duration("watch_interval", o.WatchInterval),
	}
}
