package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/driver"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/privs"
)

// Development mode defaults (serve --dev, what `make run` starts).
const (
	devSocket      = "./run/conjur.sock"
	devPluginLogin = "host/swarm/conjur-plugin"
	devPluginRole  = "host:swarm/conjur-plugin"
)

// serveOptions are serve's own flags besides the settings.
type serveOptions struct {
	dev    bool
	devDir string
	prog   string    // how the user invoked us, for the printed next step
	out    io.Writer // the printed next step (dev mode)
	ready  func()    // called once the socket listens (tests)
	// dropPrivileges drops every capability once the sockets listen (the
	// serve command; tests run serve in their own process and keep theirs).
	dropPrivileges bool
}

func newServeCmd() *cobra.Command {
	var opts serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the plugin daemon on its socket (the managed plugin's entrypoint)",
		Long: `Run the secret driver: answer Swarm's GetSecret calls on the plugin socket,
plus the status and bootstrap endpoints.

Settings come from flags and the environment (flags win). Without Conjur
settings or without a credential the plugin still starts, and every request
fails with an error that says what to set; see ` + "`conjur-swarm status`" + `.

With --dev it starts an embedded Conjur-compatible server seeded with
docs/examples (Conjur policy, values, mapping file) and listens on
./run/conjur.sock.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := viper.New()
			if err := bindSettings(v, cmd.Flags()); err != nil {
				return err
			}
			if opts.dev {
				applyDevDefaults(v, cmd)
			}
			cfg, err := loadConfig(v)
			if err != nil {
				return fmt.Errorf("the settings are invalid:\n%w", err)
			}
			opts.prog = os.Args[0]
			opts.out = cmd.OutOrStdout()
			opts.dropPrivileges = !opts.dev
			return runServe(cmd.Context(), cfg, opts)
		},
	}
	addSettingFlags(cmd.Flags())
	cmd.Flags().BoolVar(&opts.dev, "dev", false, "run against an embedded Conjur-compatible server seeded with --dev-dir, socket ./run/conjur.sock")
	cmd.Flags().StringVar(&opts.devDir, "dev-dir", "docs/examples", "demo data for --dev: conjur-policy.yml, values.yml, mapping.yml")
	return cmd
}

// applyDevDefaults points the socket, the mapping file and the log format at
// development values unless a flag says otherwise.
func applyDevDefaults(v *viper.Viper, cmd *cobra.Command) {
	devDir, _ := cmd.Flags().GetString("dev-dir")
	if v.GetString("identity") == identityPerRequest {
		applyDevIdentityDefaults(v, cmd, &devDir)
	}
	if !cmd.Flags().Changed("socket") {
		v.Set("socket", devSocket)
	}
	if !cmd.Flags().Changed("mapping-file") {
		v.Set("mapping_file", filepath.Join(devDir, "mapping.yml"))
	}
	if !cmd.Flags().Changed("log-format") {
		v.Set("log_format", "console")
	}
}

// runServe wires the policy store, the Conjur client, the driver, the
// socket server and the optional metrics endpoint, and runs until ctx is
// cancelled (SIGINT/SIGTERM), then drains. Its phases, in order: the
// logger, the dev server's settings (--dev), the policy store, the Conjur
// client, the driver, the server and its background goroutines, the
// privilege drop, then serving until the drain. What a phase starts is
// stopped in the reverse order.
func runServe(ctx context.Context, cfg Config, opts serveOptions) error {
	log, err := newPluginLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	var devURL string
	if opts.dev {
		dev, closeDev, err := startDevConjur(opts.devDir, cfg.Identity, log.Named("conjurdev"))
		if err != nil {
			return err
		}
		defer closeDev()
		cfg.Conjur, cfg.AllowHTTP, devURL = dev, false, dev.ApplianceURLs[0]
	}

	// A broken mapping file does not stop the plugin: it answers every
	// request MAPPING_INVALID until the file is fixed, then adopts it.
	store := policy.OpenStore(cfg.MappingFile, log.Named("policy"))

	conj, problem, closeConjur := newConjurClient(cfg, opts.dev, log)
	defer closeConjur()

	d, metricsSrv, closeSink, err := newPluginDriver(cfg, store, conj, problem, log)
	if err != nil {
		return err
	}
	defer closeSink()

	srv, ln, stopBackground, err := startServer(cfg, d, store, metricsSrv, log)
	if err != nil {
		return err
	}
	defer stopBackground()

	if opts.dropPrivileges {
		dropPrivileges(log)
	}

	announceServing(log, cfg, store, conj != nil)
	if opts.dev && cfg.Identity.Mode == identityPerRequest {
		printDevIdentityNextStep(opts.out, opts.prog, cfg.Socket, devURL)
	} else if opts.dev {
		printDevNextStep(opts.out, opts.prog, cfg.Socket, devURL)
	}
	if opts.ready != nil {
		opts.ready()
	}

	err = srv.Serve(ctx, ln, cfg.ShutdownTimeout)
	log.Info("plugin stopped", zap.NamedError("drain", err))
	return err
}

// newPluginDriver builds the driver over the store and the Conjur client
// (nil, and problem says why, when the Conjur settings are unusable), with the metrics (CONJUR_SWARM_METRICS_LISTEN; the returned server is nil
// without it, and does not listen yet) and the syslog audit sink
// (CONJUR_SWARM_AUDIT_SYSLOG), which the returned function closes.
func newPluginDriver(cfg Config, store *policy.Store, conj driver.Conjur, problem string, log *zap.Logger) (*driver.Driver, *http.Server, func(), error) {
	var observer driver.Observer
	var metricsSrv *http.Server
	if cfg.MetricsListen != "" {
		m, srv, err := newMetricsServer(cfg.MetricsListen)
		if err != nil {
			return nil, nil, nil, err
		}
		observer, metricsSrv = m, srv
	}

	sink, err := newAuditSink(cfg, log.Named("audit_syslog"))
	if err != nil {
		return nil, nil, nil, err
	}
	closeSink := func() {}
	if sink != nil {
		closeSink = sink.Close
	}

	dopts := driver.Options{
		Resolver:      store,
		PolicyStatus:  store,
		Conjur:        conj,
		ConfigProblem: problem,
		Account:       cfg.Conjur.Account,
		ApplianceURLs: cfg.Conjur.ApplianceURLs,
		Logger:        log.Named("driver"),
		Observer:      observer,
		Version:       version,
		Prefetch:      cfg.Prefetch,
	}
	if sink != nil { // never a typed nil in an interface
		dopts.AuditSink = sink
	}
	d, err := driver.New(dopts)
	if err != nil {
		closeSink()
		return nil, nil, nil, err
	}
	if metricsSrv != nil {
		metricsSrv.Handler = withHealth(metricsSrv.Handler, d.HealthHandler())
	}
	return d, metricsSrv, closeSink, nil
}

// startServer listens on the plugin socket and starts the background
// goroutines: the mapping file watcher and, with metricsSrv, the metrics
// endpoint. The returned function shuts the metrics endpoint down, stops the
// watcher and waits for both; the socket is served by the caller.
func startServer(cfg Config, d *driver.Driver, store *policy.Store, metricsSrv *http.Server, log *zap.Logger) (*driver.Server, net.Listener, func(), error) {
	ln, err := listenSocket(cfg.Socket)
	if err != nil {
		return nil, nil, nil, err
	}
	srv := driver.NewServer(d, log.Named("server"))

	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(context.Background())
	stopWatcher := func() {
		stopBG()
		wg.Wait()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := store.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("mapping file watcher stopped", zap.Error(err))
		}
	}()
	if metricsSrv == nil {
		return srv, ln, stopWatcher, nil
	}
	mln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		_ = ln.Close()
		stopWatcher()
		return nil, nil, nil, fmt.Errorf("CONJUR_SWARM_METRICS_LISTEN %s: %w", cfg.MetricsListen, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := metricsSrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", zap.Error(err))
		}
	}()
	return srv, ln, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = metricsSrv.Shutdown(sctx)
		cancel()
		stopWatcher()
	}, nil
}

// dropPrivileges drops every capability once every socket is bound: from
// there on the plugin reads files it owns and talks over sockets it holds,
// which needs no capability. A failure is a warning, not a stop.
func dropPrivileges(log *zap.Logger) {
	if err := privs.Drop(); err != nil {
		log.Warn("could not drop the plugin's Linux capabilities; it goes on with them", zap.String("why", err.Error()))
	} else {
		log.Info("dropped every Linux capability (bounding set included) and set no_new_privs")
	}
}

// announceServing logs the plugin's start with its mapping and settings,
// and warns about mapping rules that let a secret's creator choose the
// variable.
func announceServing(log *zap.Logger, cfg Config, store *policy.Store, conjurConfigured bool) {
	st := store.Status()
	var warnings []string
	if p := store.Policy(); p != nil {
		warnings = p.Warnings().Strings()
	}
	log.Info("plugin serving",
		zap.String("version", version),
		zap.String("socket", cfg.Socket),
		zap.String("mapping_hash", st.Hash),
		zap.Int("mapping_rules", st.Rules),
		zap.Strings("mapping_warnings", warnings),
		zap.Bool("conjur_configured", conjurConfigured),
		zap.Object("settings", cfg))
	if len(warnings) > 0 {
		log.Warn("the mapping policy lets anyone who can create a swarm secret choose the variable; see mapping_warnings for the rules and how to fix them",
			zap.Strings("mapping_warnings", warnings))
	}
}

// newConjurClient builds the Conjur client and the function that closes it.
// When Conjur's settings are missing or invalid it returns no client and
// the problem, which every request's NOT_CONFIGURED answer and the status
// endpoint repeat.
func newConjurClient(cfg Config, dev bool, log *zap.Logger) (driver.Conjur, string, func()) {
	fail := func(err error) (driver.Conjur, string, func()) {
		reason := "the Conjur settings are incomplete or invalid: " + strings.ReplaceAll(err.Error(), "\n", "; ")
		log.Error("the plugin cannot reach Conjur until its settings are fixed; every request fails NOT_CONFIGURED", zap.String("problems", reason))
		return nil, reason, func() {}
	}
	ca, err := cfg.Conjur.caPEM()
	if err != nil {
		return fail(err)
	}
	if cfg.Conjur.APIKey != "" && !dev {
		log.Warn("CONJUR_AUTHN_API_KEY is set: for development only, its value shows in `docker plugin inspect`; use the bootstrap handoff or CONJUR_SWARM_CREDENTIAL_FILE")
	}
	cc := cfg.conjurConfig(ca)
	if cc.Signer, err = cfg.Identity.signer(); err != nil {
		return fail(err)
	}
	client, err := conjur.New(cc, log.Named("conjur"))
	if err != nil {
		return fail(err)
	}
	return client, "", func() { _ = client.Close() }
}
