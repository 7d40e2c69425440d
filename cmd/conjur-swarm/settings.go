package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/auditsink"
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/identity"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// setting is one key of serve's configuration. Its declaration in settings
// is the only place that names its environment variable, flag, default,
// check and bounds, its row in docs/install.md (TestInstallDocSettingsTables
// keeps the tables there equal to renderSettingsTables) and whether it is a
// secret (a redact.String field).
type setting struct {
	key   string // viper key; also the key in the "plugin serving" log line
	env   string
	def   string
	flag  string // "" = environment only (credentials never get a flag)
	help  string // the flag's help
	table docTable
	doc   string // the Meaning column of its docs/install.md row (Markdown)
	value field  // the Config field it fills, and how
}

// docTable is the settings table of docs/install.md that lists a setting.
type docTable int

const (
	// pluginTable: settings of the managed plugin (plugin/config.json's env,
	// set with `docker plugin set`).
	pluginTable docTable = iota
	// serveTable: settings of `conjur-swarm serve` that the manifest does not
	// expose.
	serveTable
)

// Bounds that are serve's own. The Conjur client's defaults and bounds
// (fetch timeout, cache TTL, requests in flight) are decided by package
// conjur's constants, which the declarations below use: never a second
// literal.
const (
	maxShutdownTimeout = 5 * time.Minute
)

// settings lists every key `serve` reads, in the order of docs/install.md.
// To add a setting: add its field to Config (a redact.String if it is a
// secret), declare it here, and run
// `go test ./cmd/conjur-swarm -run TestInstallDocSettingsTables -update`.
var settings = []setting{
	{key: "appliance_url", env: "CONJUR_APPLIANCE_URL", help: "Conjur URL(s), comma-separated (followers are tried in order)",
		doc:   "Conjur's URL, `https://...`. Several, comma-separated (followers): tried in order, a failing one is set aside and retried later.",
		value: list(func(c *Config) *[]string { return &c.Conjur.ApplianceURLs })},
	{key: "account", env: "CONJUR_ACCOUNT", help: "Conjur account",
		doc:   "The Conjur account.",
		value: text(func(c *Config) *string { return &c.Conjur.Account }, nil)},
	{key: "authn_login", env: "CONJUR_AUTHN_LOGIN", help: "the plugin's Conjur identity, e.g. host/swarm/conjur-plugin",
		doc:   "The plugin's Conjur identity, e.g. `host/swarm/conjur-plugin`. The bootstrap handoff accepts only a credential for this login.",
		value: text(func(c *Config) *string { return &c.Conjur.Login }, nil)},
	{key: "cert_file", env: "CONJUR_CERT_FILE", help: "PEM file of the CA that signed Conjur's certificate",
		doc:   "The CA certificate (PEM) of Conjur inside the plugin, e.g. `/etc/conjur-swarm/ca/conjur.pem` (mount `ca`). Empty: the public CAs of the bundled `ca-certificates`. Re-read when it changes (within a second) and after a TLS failure, so a corrected CA works without a restart.",
		value: text(func(c *Config) *string { return &c.Conjur.CertFile }, nil)},
	{key: "environment", env: "CONJUR_ENVIRONMENT", help: "saas (Conjur Cloud), self-hosted or oss; empty = detect Conjur Cloud from the URL",
		doc:   "`saas` (Conjur Cloud), `self-hosted` or `oss`. Empty: Conjur Cloud when every URL is `https://TENANT.secretsmgr.cyberark.cloud` (then `/api` is added to the URL and an empty `CONJUR_ACCOUNT` means `conjur`), self-hosted otherwise. See [conjur.md](conjur.md#conjur-cloud).",
		value: text(func(c *Config) *string { return &c.Conjur.Environment }, nil)},
	{key: "proxy", env: "CONJUR_SWARM_PROXY", flag: "proxy", help: "proxy to reach Conjur through, http://HOST:PORT or https://HOST:PORT (CONNECT tunnels; TLS stays end to end); empty = direct",
		doc:   "A proxy to reach Conjur through, `https://HOST:PORT` (TLS to the proxy, verified against `CONJUR_CERT_FILE`'s CA and the system's) or `http://HOST:PORT`: every connection to Conjur is a CONNECT tunnel, with TLS inside it verified against Conjur's CA as without a proxy. Nothing else uses it, and `HTTPS_PROXY` is never read. No user or password here: see the next row. Empty: Conjur is reached directly.",
		value: text(func(c *Config) *string { return &c.Conjur.Proxy }, nil)},
	{key: "proxy_credential_file", env: "CONJUR_SWARM_PROXY_CREDENTIAL_FILE", flag: "proxy-credential-file", help: "file holding user:password for CONJUR_SWARM_PROXY, read for each new tunnel",
		doc:   "The proxy's `user:password` (first line) in a root-only file on the `identity` mount, e.g. `/etc/conjur-swarm/identity/proxy`; read for each new tunnel and sent as Basic `Proxy-Authorization`: inside TLS to an `https://` proxy, in clear text to an `http://` one (the plugin warns at start). Empty: no proxy credentials.",
		value: text(func(c *Config) *string { return &c.Conjur.ProxyCredentialFile }, nil)},
	{key: "authn_jwt_service_id", env: "CONJUR_AUTHN_JWT_SERVICE_ID", help: "authn-jwt service id",
		doc:   "authn-jwt service id; with `JWT_TOKEN_PATH` the plugin authenticates with a JWT instead of an API key.",
		value: text(func(c *Config) *string { return &c.Conjur.JWTServiceID }, nil)},
	{key: "jwt_token_path", env: "JWT_TOKEN_PATH", help: "file holding the JWT for authn-jwt, re-read at each authentication",
		doc:   "File holding the JWT inside the plugin, e.g. `/etc/conjur-swarm/identity/jwt`; re-read at each authentication.",
		value: text(func(c *Config) *string { return &c.Conjur.JWTTokenPath }, nil)},
	{key: "authn_type", env: "CONJUR_AUTHN_TYPE", help: "cert: log in with the swarm node certificate (authn-cert); iam, azure or gcp: with the VM's identity; empty = API key or JWT",
		doc: "`cert`: log in to Conjur's authn-cert (`CONJUR_SERVICE_ID`) as the host `CONJUR_AUTHN_LOGIN` with this node's own swarm certificate (mount `swarm`), re-read at each login so Swarm's rotation needs no restart. " +
			"`azure` or `gcp`: log in to authn-azure (`CONJUR_SERVICE_ID`) or authn-gcp as that host with a token of the VM's identity, asked of the instance metadata service at each login. " +
			"`iam`: log in to authn-iam (`CONJUR_SERVICE_ID`) with an STS GetCallerIdentity request the plugin signs with the EC2 instance role's credentials (IMDSv2, fetched again before they expire). No API key, no bootstrap secret. " +
			"Empty: an API key or a JWT. See [conjur.md](conjur.md#log-in-with-the-swarm-node-certificate), [conjur.md](conjur.md#log-in-with-the-cloud-vms-identity) and [conjur.md](conjur.md#log-in-with-the-ec2-instance-role-authn-iam).",
		value: word(func(c *Config) *string { return &c.Conjur.AuthnType }, oneOf("", conjur.AuthnCert, conjur.AuthnIAM, conjur.AuthnAzure, conjur.AuthnGCP))},
	{key: "service_id", env: "CONJUR_SERVICE_ID", help: "service id of the authenticator CONJUR_AUTHN_TYPE names (authn-cert/<id>, authn-iam/<id>, authn-azure/<id>; none for gcp)",
		doc:   "With `CONJUR_AUTHN_TYPE=cert`, `iam` or `azure`: the authenticator's service id, e.g. `swarm` for `conjur/authn-cert/swarm`. Empty with `gcp` (authn-gcp has none).",
		value: text(func(c *Config) *string { return &c.Conjur.ServiceID }, nil)},
	{key: "authn_azure_client_id", env: "CONJUR_AUTHN_AZURE_CLIENT_ID", help: "client id of the user-assigned managed identity for CONJUR_AUTHN_TYPE=azure; empty = the system-assigned one",
		doc:   "With `CONJUR_AUTHN_TYPE=azure`: the client id of the user-assigned managed identity to ask a token for. Empty: the VM's system-assigned identity.",
		value: text(func(c *Config) *string { return &c.Conjur.AzureClientID }, nil)},
	{key: "authn_iam_region", env: "CONJUR_AUTHN_IAM_REGION", help: "AWS region whose STS endpoint CONJUR_AUTHN_TYPE=iam signs for; empty = the global endpoint (us-east-1)",
		doc:   "With `CONJUR_AUTHN_TYPE=iam`: the AWS region whose STS endpoint (`sts.REGION.amazonaws.com`) the signed request names, e.g. `eu-west-1`; Conjur sends it there. Empty: the global endpoint `sts.amazonaws.com`, signed for `us-east-1`.",
		value: text(func(c *Config) *string { return &c.Conjur.IAMRegion }, nil)},
	{key: "authn_cert_file", env: "CONJUR_AUTHN_CERT_FILE", def: "/etc/conjur-swarm/swarm/swarm-node.crt", help: "client certificate for CONJUR_AUTHN_TYPE=cert",
		doc:   "With `CONJUR_AUTHN_TYPE=cert`: the client certificate inside the plugin; the default is the node's swarm certificate on the `swarm` mount.",
		value: text(func(c *Config) *string { return &c.Conjur.ClientCertFile }, nil)},
	{key: "authn_cert_key_file", env: "CONJUR_AUTHN_CERT_KEY_FILE", def: "/etc/conjur-swarm/swarm/swarm-node.key", help: "key of CONJUR_AUTHN_CERT_FILE",
		doc:   "With `CONJUR_AUTHN_TYPE=cert`: the certificate's key inside the plugin; the default is the node's swarm key on the `swarm` mount (refused while the swarm is autolocked: the key is then encrypted).",
		value: text(func(c *Config) *string { return &c.Conjur.ClientKeyFile }, nil)},
	{key: "identity", env: "CONJUR_SWARM_IDENTITY", flag: "identity", help: "per-request: each Get authenticates to Conjur as the identity the mapping chose, with a JWT this manager signs; empty = one identity for the whole swarm",
		doc:   "`per-request`: for each Get the plugin signs a short JWT naming the identity the mapping chose (`identity:`) and logs in to Conjur's authn-jwt (`CONJUR_AUTHN_JWT_SERVICE_ID`) as that host: no API key, no bootstrap secret. Empty: one Conjur identity for the whole swarm (API key or JWT file). See [conjur.md](conjur.md#per-stack-identity).",
		value: word(func(c *Config) *string { return &c.Identity.Mode }, oneOf("", identityPerRequest))},
	{key: "identity_issuer", env: "CONJUR_SWARM_IDENTITY_ISSUER", flag: "identity-issuer", help: "iss of the JWTs the plugin signs (required with CONJUR_SWARM_IDENTITY=per-request)",
		doc:   "With `per-request`, required: the `iss` claim of the JWTs the plugin signs, equal to the authn-jwt service's `issuer` variable, e.g. `https://swarm.example.com` (the plugin has no Docker API to look the cluster up).",
		value: text(func(c *Config) *string { return &c.Identity.Issuer }, nil)},
	{key: "identity_audience", env: "CONJUR_SWARM_IDENTITY_AUDIENCE", flag: "identity-audience", help: "aud of the JWTs the plugin signs; empty = none",
		doc:   "With `per-request`: the `aud` claim, equal to the authn-jwt service's `audience` variable. Empty: no `aud` claim.",
		value: text(func(c *Config) *string { return &c.Identity.Audience }, nil)},
	{key: "identity_token_lifetime", env: "CONJUR_SWARM_IDENTITY_TOKEN_LIFETIME", def: "5m", flag: "identity-token-lifetime", help: "lifetime of the JWTs the plugin signs (1m to 60m)",
		doc: "With `per-request`: how long a signed JWT is valid (`exp` - now), from `1m` to `60m`. A JWT is used once, at once, to log in; its `iat` is set 30 s in the past because Conjur refuses an `iat` later than its own clock.",
		value: duration(func(c *Config) *time.Duration { return &c.Identity.TokenLifetime },
			bounds{min: identity.MinLifetime, max: identity.MaxLifetime}, "5m")},
	{key: "identity_state_dir", env: "CONJUR_SWARM_IDENTITY_STATE_DIR", def: "/var/lib/conjur-swarm", flag: "identity-state-dir", help: "private directory of this manager's signing keys (mount state)",
		doc:   "With `per-request`: the directory of this manager's signing keys inside the plugin (mount `state`, read-write). It must be `0700` and the key files `0600`, owned by the plugin's user; the key is generated there at first start and kept across restarts, upgrades and reinstalls.",
		value: text(func(c *Config) *string { return &c.Identity.StateDir }, nil)},
	{key: "mapping_file", env: "CONJUR_SWARM_MAPPING_FILE", flag: "mapping-file", help: "mapping policy YAML; empty = the built-in by-label rule",
		doc:   "The mapping policy inside the plugin, e.g. `/etc/conjur-swarm/mapping/mapping.yml`. Empty: the built-in rule (`conjur.variable` label). Reloaded when it changes; a broken new version is logged and ignored. A file that is broken or missing at start does not stop the plugin: it answers every request `MAPPING_INVALID` until the file is fixed, then adopts it.",
		value: text(func(c *Config) *string { return &c.MappingFile }, nil)},
	{key: "credential_file", env: "CONJUR_SWARM_CREDENTIAL_FILE", flag: "credential-file", help: "file with the API key or credential JSON, re-read at each authentication",
		doc:   "Root-only credential file inside the plugin, e.g. `/etc/conjur-swarm/identity/credential.json`: the API key as text, or `{\"login\": ..., \"api_key\": ...}` (it may also carry the bootstrap secret's `account` and `appliance_url`, which are ignored here); re-read at each authentication. Empty: wait for the bootstrap handoff.",
		value: text(func(c *Config) *string { return &c.CredentialFile }, nil)},
	{key: "log_level", env: "CONJUR_SWARM_LOG_LEVEL", def: "info", flag: "log-level", help: "debug, info, warn or error",
		doc:   "`debug`, `info`, `warn` or `error`.",
		value: word(func(c *Config) *string { return &c.LogLevel }, logLevel)},
	{key: "fetch_timeout", env: "CONJUR_SWARM_FETCH_TIMEOUT", def: conjur.DefaultFetchTimeout.String(), flag: "fetch-timeout", help: "deadline of one Conjur fetch (above 0, below " + conjur.MaxFetchTimeout.String() + ")",
		doc: "Deadline of one Conjur fetch (above 0, below " + conjur.MaxFetchTimeout.String() + "). Swarm waits at most 30 s for the plugin and a slow answer holds up every task assignment of that node.",
		value: duration(func(c *Config) *time.Duration { return &c.FetchTimeout },
			bounds{min: 0, max: conjur.MaxFetchTimeout, openMin: true, openMax: true}, conjur.DefaultFetchTimeout.String())},
	{key: "cache_ttl", env: "CONJUR_SWARM_CACHE_TTL", def: time.Duration(conjur.DefaultCacheTTL).String(), flag: "cache-ttl", help: "value cache lifetime; 0 = off; never used for reuse: false rules",
		doc: "How long a fetched value may be served again; `0s` = off. Never used for rules with `reuse: false` (the default). At most `" + conjur.MaxCacheTTL.String() + "`.",
		value: duration(func(c *Config) *time.Duration { return &c.CacheTTL },
			bounds{min: 0, max: conjur.MaxCacheTTL}, "30s")},
	{key: "max_in_flight", env: "CONJUR_SWARM_MAX_IN_FLIGHT", def: strconv.Itoa(conjur.DefaultMaxInFlight), flag: "max-in-flight", help: "the most requests to Conjur in flight at once (the adaptive window's ceiling); past the window Gets gather into batches",
		doc: "The most requests to Conjur in flight at once. The window starts at 4 (or this, if lower), grows while Conjur's round trip stays flat and Gets waited for a slot at least a quarter of a round trip, gives back a little when they hardly waited, " +
			"and shrinks when the round trip rises past twice that of a request sent alone or Conjur answers 5xx/429; a Get that finds a slot free is sent at once, past the window Gets gather into one batch request per freed slot. " +
			fmt.Sprintf("From %d (one request at a time) up to %d", conjur.MinMaxInFlight, conjur.MaxMaxInFlight) + "; see docs/benchmarks.md.",
		value: integer(func(c *Config) *int { return &c.MaxInFlight }, conjur.MinMaxInFlight, conjur.MaxMaxInFlight, strconv.Itoa(conjur.DefaultMaxInFlight))},
	{key: "prefetch", env: "CONJUR_SWARM_PREFETCH", def: "true", flag: "prefetch", help: "at a task's first Get, fetch the variables its service was allowed before, for that task only",
		doc:   "At a task's first GetSecret, fetch in the same batch the variables earlier tasks of the same service were allowed, and serve each to that task only (same task, service, rule, variable and version), once, within 5 s; every Get is still decided by the mapping policy. `false` turns it off. See docs/benchmarks.md.",
		value: boolean(func(c *Config) *bool { return &c.Prefetch })},
	{key: "metrics_listen", env: "CONJUR_SWARM_METRICS_LISTEN", flag: "metrics-listen", help: "host:port for Prometheus /metrics and the health endpoints /healthz and /readyz; empty = off",
		doc:   "`host:port` for Prometheus metrics at `/metrics` and the health endpoints `/healthz` and `/readyz` ([Health](#health-healthz-and-readyz)), on the host network; empty = off.",
		value: text(func(c *Config) *string { return &c.MetricsListen }, hostPort)},
	{key: "audit_syslog", env: "CONJUR_SWARM_AUDIT_SYSLOG", flag: "audit-syslog", help: "also send each audit record to syslog: unix:///PATH, udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT; empty = off",
		doc: "Also send every decision's audit record to a syslog receiver (a SIEM collector), RFC 5424 with the JSON record as the message: " +
			"`udp://HOST:PORT`, `tcp://HOST:PORT`, `tls://HOST:PORT` or `unix:///PATH`. A receiver that is down never delays a secret: " +
			"records wait in a bounded queue and are dropped, counted and warned about. Empty = off. See [security.md](security.md#audit-to-a-siem).",
		value: text(func(c *Config) *string { return &c.AuditSyslog }, syslogTarget)},
	{key: "audit_syslog_ca_file", env: "CONJUR_SWARM_AUDIT_SYSLOG_CA_FILE", flag: "audit-syslog-ca-file", help: "PEM CA file a tls:// syslog receiver must be signed by (added to the system's)",
		doc:   "For `tls://`: a PEM file of the CA that signed the receiver's certificate, e.g. on the `ca` mount; added to the system's CAs.",
		value: text(func(c *Config) *string { return &c.AuditSyslogCA }, nil)},

	{key: "socket", env: "CONJUR_SWARM_SOCKET", def: "/run/docker/plugins/conjur.sock", flag: "socket", help: "unix socket the plugin listens on",
		table: serveTable, doc: "The unix socket to listen on.",
		value: text(func(c *Config) *string { return &c.Socket }, required("the socket path, e.g. /run/docker/plugins/conjur.sock"))},
	{key: "log_format", env: "CONJUR_SWARM_LOG_FORMAT", def: "json", flag: "log-format", help: "json or console",
		table: serveTable, doc: "`json` or `console`.",
		value: word(func(c *Config) *string { return &c.LogFormat }, oneOf("json", "console"))},
	{key: "allow_http", env: "CONJUR_SWARM_ALLOW_HTTP", def: "false", flag: "allow-http", help: "allow plain http:// Conjur URLs (development only)",
		table: serveTable, doc: "Allow plain `http://` Conjur URLs (development only).",
		value: boolean(func(c *Config) *bool { return &c.AllowHTTP })},
	{key: "shutdown_timeout", env: "CONJUR_SWARM_SHUTDOWN_TIMEOUT", def: "8s", flag: "shutdown-timeout", help: "how long to let in-flight requests finish on SIGTERM (Docker kills a plugin 10s after it)",
		table: serveTable, doc: "On SIGTERM, how long requests in flight may finish. `docker plugin disable` sends SIGTERM and kills the plugin 10 s later, so keep it under that.",
		value: duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout },
			bounds{min: 0, max: maxShutdownTimeout, openMin: true}, "8s")},
	{key: "ssl_certificate", env: "CONJUR_SSL_CERTIFICATE", help: "the same CA as PEM text",
		table: serveTable, doc: "The Conjur CA as PEM text instead of `CONJUR_CERT_FILE`.",
		value: secret(func(c *Config) *redact.String { return &c.Conjur.SSLCertificate }, false)},
	{key: "authn_api_key", env: "CONJUR_AUTHN_API_KEY", help: "API key (development only: it shows in docker plugin inspect)",
		table: serveTable, doc: "The API key itself. **Development only**: as a plugin setting it would show in `docker plugin inspect`; the plugin logs a warning when it is set.",
		value: secret(func(c *Config) *redact.String { return &c.Conjur.APIKey }, true)},
	{key: "authn_jwt_host_id", env: "CONJUR_AUTHN_JWT_HOST_ID", help: "host id for authn-jwt (optional)",
		table: serveTable, doc: "Host id for authn-jwt, when the JWT does not name it.",
		value: text(func(c *Config) *string { return &c.Conjur.JWTHostID }, nil)},
	{key: "aws_access_key_id", env: "AWS_ACCESS_KEY_ID", help: "AWS access key id for CONJUR_AUTHN_TYPE=iam; empty = the EC2 instance role's credentials",
		table: serveTable, doc: "With `CONJUR_AUTHN_TYPE=iam`: the AWS credentials to sign with instead of the instance role's, with `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` for temporary ones). Not a plugin setting: it would show in `docker plugin inspect`; the managed plugin uses the instance role.",
		value: secret(func(c *Config) *redact.String { return &c.Conjur.AWSAccessKeyID }, true)},
	{key: "aws_secret_access_key", env: "AWS_SECRET_ACCESS_KEY", help: "AWS secret access key of AWS_ACCESS_KEY_ID",
		table: serveTable, doc: "The secret access key of `AWS_ACCESS_KEY_ID`.",
		value: secret(func(c *Config) *redact.String { return &c.Conjur.AWSSecretAccessKey }, true)},
	{key: "aws_session_token", env: "AWS_SESSION_TOKEN", help: "AWS session token of temporary credentials",
		table: serveTable, doc: "The session token of temporary credentials (`ASIA...` key ids); empty for long-term ones.",
		value: secret(func(c *Config) *redact.String { return &c.Conjur.AWSSessionToken }, true)},
}

// field is how one setting's text becomes its Config field. set's error
// reads after the variable's name: "is X: give ...".
type field interface {
	set(c *Config, raw string) error
	show(c *Config) string // the value for logs, secrets redacted
	isBool() bool          // the flag takes no argument
}

// textField is a trimmed string, with an optional check of the trimmed text.
type textField struct {
	at    func(*Config) *string
	check func(trimmed, raw string) error
	lower bool
}

func text(at func(*Config) *string, check func(trimmed, raw string) error) field {
	return textField{at: at, check: check}
}

// word is a text compared without case, kept in lower case.
func word(at func(*Config) *string, check func(trimmed, raw string) error) field {
	return textField{at: at, check: check, lower: true}
}

func (f textField) set(c *Config, raw string) error {
	v := strings.TrimSpace(raw)
	if f.lower {
		v = strings.ToLower(v)
	}
	*f.at(c) = v
	if f.check != nil {
		return f.check(v, raw)
	}
	return nil
}

func (f textField) show(c *Config) string { return strconv.Quote(*f.at(c)) }
func (textField) isBool() bool            { return false }

func required(example string) func(string, string) error {
	return func(v, _ string) error {
		if v == "" {
			return fmt.Errorf("is empty: give %s", example)
		}
		return nil
	}
}

// oneOf accepts only the given words.
func oneOf(words ...string) func(string, string) error {
	return func(v, raw string) error {
		if slices.Contains(words, v) {
			return nil
		}
		return fmt.Errorf("is %q: give %s", raw, strings.Join(words, " or "))
	}
}

func logLevel(v, raw string) error {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(v)); err != nil || v == "" || lvl > zapcore.ErrorLevel {
		return fmt.Errorf("is %q: give debug, info, warn or error", raw)
	}
	return nil
}

func syslogTarget(v, raw string) error {
	if v == "" {
		return nil
	}
	if _, err := auditsink.ParseTarget(v); err != nil {
		return fmt.Errorf("is %w", err)
	}
	return nil
}

func hostPort(v, raw string) error {
	if v == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Errorf("is %q: give host:port, e.g. 127.0.0.1:9090, or leave it empty", raw)
	}
	return nil
}

// secretField is a redact.String, trimmed unless it is PEM text.
type secretField struct {
	at   func(*Config) *redact.String
	trim bool
}

func secret(at func(*Config) *redact.String, trim bool) field { return secretField{at, trim} }

func (f secretField) set(c *Config, raw string) error {
	if f.trim {
		raw = strings.TrimSpace(raw)
	}
	*f.at(c) = redact.String(raw)
	return nil
}

func (f secretField) show(c *Config) string { return f.at(c).String() }
func (secretField) isBool() bool            { return false }

// listField is a comma-separated list; empty items are dropped.
type listField struct{ at func(*Config) *[]string }

func list(at func(*Config) *[]string) field { return listField{at} }

func (f listField) set(c *Config, raw string) error {
	var out []string
	for _, p := range strings.Split(raw, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	*f.at(c) = out
	return nil
}

func (f listField) show(c *Config) string { return strconv.Quote(strings.Join(*f.at(c), ",")) }
func (listField) isBool() bool            { return false }

type boolField struct{ at func(*Config) *bool }

func boolean(at func(*Config) *bool) field { return boolField{at} }

func (f boolField) set(c *Config, raw string) error {
	v, err := strconv.ParseBool(strings.TrimSpace(raw))
	if err != nil {
		return fmt.Errorf("is %q: give true or false", raw)
	}
	*f.at(c) = v
	return nil
}

func (f boolField) show(c *Config) string { return strconv.FormatBool(*f.at(c)) }
func (boolField) isBool() bool            { return true }

// bounds is a duration's allowed range; an open end excludes its limit.
type bounds struct {
	min, max         time.Duration
	openMin, openMax bool
}

func (b bounds) holds(d time.Duration) bool {
	return (d > b.min || (d == b.min && !b.openMin)) && (d < b.max || (d == b.max && !b.openMax))
}

func (b bounds) String() string {
	lo, hi := "from", "up to"
	if b.openMin {
		lo = "above"
	}
	if b.openMax {
		hi = "below"
	}
	return fmt.Sprintf("%s %s and %s %s", lo, b.min, hi, b.max)
}

type durationField struct {
	at      func(*Config) *time.Duration
	bounds  bounds
	example string
}

func duration(at func(*Config) *time.Duration, b bounds, example string) field {
	return durationField{at, b, example}
}

func (f durationField) set(c *Config, raw string) error {
	d, err := time.ParseDuration(strings.TrimSpace(raw))
	if err != nil {
		return fmt.Errorf("is %q: give a duration such as %s", raw, f.example)
	}
	*f.at(c) = d
	if !f.bounds.holds(d) {
		return fmt.Errorf("is %s: give a duration %s, e.g. %s", d, f.bounds, f.example)
	}
	return nil
}

func (f durationField) show(c *Config) string { return f.at(c).String() }
func (durationField) isBool() bool            { return false }

// intField is a whole number within [min, max].
type intField struct {
	at       func(*Config) *int
	min, max int
	example  string
}

func integer(at func(*Config) *int, lo, hi int, example string) field {
	return intField{at, lo, hi, example}
}

func (f intField) set(c *Config, raw string) error {
	n, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil {
		return fmt.Errorf("is %q: give a whole number such as %s", raw, f.example)
	}
	*f.at(c) = n
	if n < f.min || n > f.max {
		return fmt.Errorf("is %d: give a number from %d up to %d, e.g. %s", n, f.min, f.max, f.example)
	}
	return nil
}

func (f intField) show(c *Config) string { return strconv.Itoa(*f.at(c)) }
func (intField) isBool() bool            { return false }

// renderSettingsTable writes the Markdown table of docs/install.md that lists
// the settings of table t.
func renderSettingsTable(t docTable) string {
	var b strings.Builder
	head := "Setting"
	if t == serveTable {
		head = "Variable (flag)"
	}
	fmt.Fprintf(&b, "| %s | Default | Meaning |\n| --- | --- | --- |\n", head)
	for _, s := range settings {
		if s.table != t {
			continue
		}
		name := "`" + s.env + "`"
		if t == serveTable && s.flag != "" {
			name += " (`--" + s.flag + "`)"
		}
		def := "(none)"
		if s.def != "" {
			def = "`" + s.def + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, def, s.doc)
	}
	return b.String()
}
