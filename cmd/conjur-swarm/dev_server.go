package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// devServerFlags are the dev-server command's flags.
type devServerFlags struct {
	listen         string
	account        string
	adminAPIKey    string
	policies       []string
	values         []string
	demo           string
	tlsCAOut       string
	stateDir       string
	pathPrefix     string
	tokenTTL       time.Duration
	authenticators []string
	providerKeys   []string
	awsIdentities  string
	latency        time.Duration
	failStatus     int
	failRate       float64
	dropRate       float64
	readOnly       bool
	logLevel       string
	logFormat      string
}

// validate reports every bad flag at once, naming it.
func (f *devServerFlags) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: want HOST:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free one)", f.listen))
	}
	if f.account == "" || strings.ContainsAny(f.account, ":/ ") {
		errs = append(errs, fmt.Errorf("--account %q: want a name without ':', '/' or spaces", f.account))
	}
	if f.tokenTTL < time.Second {
		errs = append(errs, fmt.Errorf("--token-ttl %s: want at least 1s (Conjur's default is 8m)", f.tokenTTL))
	}
	if f.latency < 0 {
		errs = append(errs, fmt.Errorf("--latency %s: want 0 or more", f.latency))
	}
	if f.failRate < 0 || f.failRate > 1 {
		errs = append(errs, fmt.Errorf("--fail-rate %v: want a fraction from 0 to 1", f.failRate))
	}
	if f.failRate > 0 && (f.failStatus < 100 || f.failStatus > 599) {
		errs = append(errs, fmt.Errorf("--fail-status %d: --fail-rate needs an HTTP status from 100 to 599", f.failStatus))
	}
	if f.failStatus != 0 && f.failRate == 0 {
		errs = append(errs, fmt.Errorf("--fail-status %d: give --fail-rate too (1 = every request)", f.failStatus))
	}
	if f.dropRate < 0 || f.dropRate > 1 {
		errs = append(errs, fmt.Errorf("--drop-rate %v: want a fraction from 0 to 1", f.dropRate))
	}
	if p := f.pathPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, " ?#%")) {
		errs = append(errs, fmt.Errorf("--path-prefix %q: want /SEGMENT, e.g. /api as Conjur Cloud (no trailing slash)", p))
	}
	for _, p := range f.policies {
		if _, file := splitPolicyFlag(p); file == "" {
			errs = append(errs, fmt.Errorf("--policy %q: want FILE or BRANCH=FILE", p))
		}
	}
	return errors.Join(errs...)
}

// splitPolicyFlag reads "FILE" (root) or "BRANCH=FILE".
func splitPolicyFlag(v string) (branch, file string) {
	if b, f, ok := strings.Cut(v, "="); ok {
		return b, f
	}
	return "root", v
}

func newDevServerCmd() *cobra.Command {
	f := &devServerFlags{}
	cmd := &cobra.Command{
		Use:   "dev-server",
		Short: "Run the in-memory Conjur-compatible server (development and tests)",
		Long: `Run an in-memory server that speaks the Conjur 1.24 API as the official Go client
(conjur-api-go) uses it: API-key and authn-jwt authentication, access tokens,
secrets (single, versioned, batch), policy loads, resources and fault injection.
It keeps nothing on disk (unless --state is given) and is for development,
demos and tests only.

It prints the URL it listens on, the admin API key and the API keys of every
user and host the preloaded policies create. These are development credentials
for a throw-away server: printing them to the operator's terminal is the point.
Never point real workloads or real secrets at it.

Without --admin-api-key a key is generated. With --tls-ca-out it serves HTTPS
with a certificate (for 127.0.0.1, ::1, localhost and this host's name) from a
CA it generates and writes to that file. It stops on SIGINT or SIGTERM.

Preloading happens in this order: --demo, then each --policy (POST at the root
branch, or at BRANCH with BRANCH=FILE), then each --values file (YAML mapping of
variable id to value; "base64:..." for binary values).

With --state DIR the CA, the token key, the API keys, the policy and every
value and version are kept in DIR (0700, files 0600) and reloaded on the next
start, so that "Conjur went away and came back" can be rehearsed with the same
CA and keys; preloading happens only on the first start. For rehearsals only:
DIR holds keys and values in plain text.`,
		Example: `  # the demo data from docs/examples over HTTPS
  conjur-swarm dev-server --listen 127.0.0.1:8443 --demo docs/examples --tls-ca-out /tmp/conjur-dev-ca.pem

  # a follower that refuses writes and fails one request in ten
  conjur-swarm dev-server --listen 127.0.0.1:8080 --policy docs/examples/conjur-policy.yml \
      --values docs/examples/values.yml --read-only --fail-status 503 --fail-rate 0.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			log, err := newLogger(f.logLevel, f.logFormat)
			if err != nil {
				return fmt.Errorf("--log-level/--log-format: %w", err)
			}
			defer func() { _ = log.Sync() }()
			return runDevServer(cmd, f, log.Named("dev-server"))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "HOST:PORT to listen on (port 0 picks a free one)")
	fs.StringVar(&f.account, "account", "dev", "Conjur account")
	fs.StringVar(&f.adminAPIKey, "admin-api-key", "", "API key of the admin user (default: generated and printed)")
	fs.StringArrayVar(&f.policies, "policy", nil, "Conjur policy to load with POST: FILE (root branch) or BRANCH=FILE; repeatable")
	fs.StringArrayVar(&f.values, "values", nil, "YAML file of variable id -> value to set after the policies; repeatable")
	fs.StringVar(&f.demo, "demo", "", "directory with conjur-policy.yml and values.yml to load first (e.g. docs/examples)")
	fs.StringVar(&f.tlsCAOut, "tls-ca-out", "", "serve HTTPS and write the generated CA certificate (PEM) to this file")
	fs.StringVar(&f.pathPrefix, "path-prefix", "", "serve the API under this path, e.g. /api as Conjur Cloud does (the printed URL includes it)")
	fs.StringVar(&f.stateDir, "state", "", "keep CA, keys, policy, values and versions in this directory and reload them on start (rehearsals only; plain text)")
	fs.DurationVar(&f.tokenTTL, "token-ttl", 8*time.Minute, "access token lifetime")
	fs.StringArrayVar(&f.authenticators, "authenticator", nil, `enabled authenticator, like CONJUR_AUTHENTICATORS: "authn", "authn-jwt/ID", "authn-iam/ID", "authn-azure/ID", "authn-gcp" or "authn-cert/ID"; repeatable (default: authn alone, as Conjur; or enable one with PATCH /AUTHENTICATOR/ID/ACCOUNT)`)
	fs.StringArrayVar(&f.providerKeys, "provider-keys", nil, "ISSUER=FILE: the JWKS of an identity provider authn-azure or authn-gcp trusts (https://accounts.google.com for GCP); repeatable")
	fs.StringVar(&f.awsIdentities, "aws-identities", "", `JSON list of test AWS credentials authn-iam verifies signatures against: [{"access_key_id","secret_access_key","session_token","arn"}]`)
	fs.DurationVar(&f.latency, "latency", 0, "fault: delay added before every response")
	fs.IntVar(&f.failStatus, "fail-status", 0, "fault: HTTP status answered (empty body) for --fail-rate of requests")
	fs.Float64Var(&f.failRate, "fail-rate", 0, "fault: fraction (0..1) of requests answered with --fail-status")
	fs.Float64Var(&f.dropRate, "drop-rate", 0, "fault: fraction (0..1) of connections closed without an answer")
	fs.BoolVar(&f.readOnly, "read-only", false, "fault: act as a read-only follower (writes answer 405)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug (one line per request), info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "console", "console or json")
	return cmd
}

func runDevServer(cmd *cobra.Command, f *devServerFlags, log *zap.Logger) error {
	generated := f.adminAPIKey == ""
	created := map[string]string{}
	providerKeys, iam, err := devServerCloud(f)
	if err != nil {
		return err
	}
	srv, err := conjurdev.New(conjurdev.Options{
		ProviderKeys:   providerKeys,
		IAM:            iam,
		Account:        f.account,
		AdminAPIKey:    redact.String(f.adminAPIKey),
		TokenTTL:       f.tokenTTL,
		Logger:         log,
		Authenticators: f.authenticators,
		StateDir:       f.stateDir,
		PathPrefix:     f.pathPrefix,
	})
	if err != nil {
		return err
	}
	if srv.Restored() {
		// The state already holds what the preloads would add; loading
		// --values again would also undo changes made in the rehearsal.
		log.Info("restored the state; preloading skipped", zap.String("state", f.stateDir))
	} else if err := preload(f, srv, created); err != nil {
		return err
	}
	faults := srv.Faults()
	faults.SetLatency(f.latency)
	faults.SetStatus(f.failStatus, f.failRate)
	faults.SetDrop(f.dropRate)
	faults.SetReadOnly(f.readOnly)

	l, err := srv.Listen(f.listen, f.tlsCAOut != "")
	if err != nil {
		return err
	}
	defer func() { _ = l.Close() }()
	if f.tlsCAOut != "" {
		// The CA certificate is public; 0644 lets clients in other
		// accounts and containers read it.
		if err := os.WriteFile(f.tlsCAOut, l.CAPEM, 0o644); err != nil {
			return fmt.Errorf("--tls-ca-out %s: %w", f.tlsCAOut, err)
		}
	}
	printDevServer(cmd.OutOrStdout(), f, srv, l, generated && !srv.Restored(), created)
	log.Info("serving", zap.String("url", l.URL), zap.String("account", srv.Account()))

	select {
	case <-cmd.Context().Done():
		log.Info("stopping on signal")
	case <-l.Done():
		return errors.New("the listener stopped unexpectedly; see the log")
	}
	return l.Close()
}

// preload loads --demo, each --policy and each --values file, in that
// order, collecting the API keys of the roles they create.
func preload(f *devServerFlags, srv *conjurdev.Server, created map[string]string) error {
	collect := func(r conjurdev.LoadResult) {
		for id, key := range r.CreatedRoles {
			created[id] = key.Reveal()
		}
	}
	if f.demo != "" {
		r, err := srv.LoadDemo(f.demo)
		if err != nil {
			return fmt.Errorf("--demo %s: %w", f.demo, err)
		}
		collect(r)
	}
	for _, p := range f.policies {
		branch, file := splitPolicyFlag(p)
		body, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--policy %s: %w", p, err)
		}
		r, err := srv.LoadConjurPolicy(conjurdev.ModePost, branch, body)
		if err != nil {
			return fmt.Errorf("--policy %s: loading it at branch %q: %w", p, branch, err)
		}
		collect(r)
	}
	for _, v := range f.values {
		if err := srv.LoadValuesFile(v); err != nil {
			return fmt.Errorf("--values %s: %w", v, err)
		}
	}
	return nil
}

// printDevServer tells the operator how to reach the server. The keys are
// development credentials of an in-memory server, printed on purpose.
func printDevServer(w io.Writer, f *devServerFlags, srv *conjurdev.Server, l *conjurdev.Listener, generated bool, created map[string]string) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
	where := "in-memory"
	if f.stateDir != "" {
		where = "state on disk"
	}
	p("conjur-swarm dev-server: %s, Conjur %s API, account %q (development only: keys below are throw-away)\n", where, conjurdev.Version, srv.Account())
	p("URL: %s\n", l.URL)
	switch {
	case f.stateDir != "" && srv.Restored():
		p("state: %s, restored (same CA, keys, policy and values as before; preloading skipped; rehearsals only)\n", f.stateDir)
	case f.stateDir != "":
		p("state: %s, new (kept for the next start; rehearsals only)\n", f.stateDir)
	}
	if f.tlsCAOut != "" {
		p("CA certificate: %s\n", f.tlsCAOut)
	}
	note := ""
	if generated {
		note = " (generated)"
	}
	p("admin: login admin, API key %s%s\n", srv.AdminAPIKey(), note)
	if len(created) > 0 {
		p("roles created by the loaded policies (login, API key):\n")
		ids := make([]string, 0, len(created))
		for id := range created {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			p("  %s %s\n", loginOfRole(id), created[id])
		}
	}
	if faults := describeFaults(f); faults != "" {
		p("faults: %s\n", faults)
	}
	curlCA := ""
	if f.tlsCAOut != "" {
		curlCA = " --cacert " + f.tlsCAOut
	}
	p("try: curl%s -s %s/authn/%s/admin/authenticate --data-binary '%s'\n", curlCA, l.URL, srv.Account(), srv.AdminAPIKey())
	p("stop with Ctrl-C\n")
}

// loginOfRole turns "acct:host:x" into "host/x" and "acct:user:u" into "u".
func loginOfRole(id string) string {
	parts := strings.SplitN(id, ":", 3)
	if len(parts) != 3 {
		return id
	}
	if parts[1] == "user" {
		return parts[2]
	}
	return parts[1] + "/" + parts[2]
}

func describeFaults(f *devServerFlags) string {
	var out []string
	if f.latency > 0 {
		out = append(out, "latency "+f.latency.String())
	}
	if f.failRate > 0 {
		out = append(out, fmt.Sprintf("status %d for %.0f%% of requests", f.failStatus, f.failRate*100))
	}
	if f.dropRate > 0 {
		out = append(out, fmt.Sprintf("drop %.0f%% of connections", f.dropRate*100))
	}
	if f.readOnly {
		out = append(out, "read-only follower (writes answer 405)")
	}
	return strings.Join(out, ", ")
}
