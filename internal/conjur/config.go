package conjur

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Defaults and limits applied by New. They are the only place these are
// decided: cmd's settings (CONJUR_SWARM_FETCH_TIMEOUT, _CACHE_TTL,
// _MAX_IN_FLIGHT) take their defaults and bounds from here.
const (
	DefaultFetchTimeout = 5 * time.Second
	MaxFetchTimeout     = 30 * time.Second // Swarm gives a plugin 30 s; a fetch must end well before
	DefaultMaxInFlight  = 32               // the adaptive window's ceiling (it starts at 4); see docs/benchmarks.md
	MinMaxInFlight      = 1                // 0 in a Config means the default
	MaxMaxInFlight      = 64
	DefaultCacheTTL     = 0 // off
	DefaultMaxBatch     = 100
	MaxMaxBatch         = 500
	MaxCacheTTL         = 10 * time.Minute
)

// Config holds the connection settings. The comments name the plugin setting
// (environment variable) that fills each field; validation errors use those names.
// The API key is a redact.String, so a Config prints, logs and encodes without it.
type Config struct {
	ApplianceURLs  []string      // CONJUR_APPLIANCE_URL, comma-separated list allowed; tried in order, failing ones set aside
	Account        string        // CONJUR_ACCOUNT
	Login          string        // CONJUR_AUTHN_LOGIN, e.g. "host/swarm/conjur-plugin"; the handoff accepts only this login
	CACertPEM      []byte        // from CONJUR_SSL_CERTIFICATE or the file CONJUR_CERT_FILE (cmd reads the file)
	CACertFile     string        // CONJUR_CERT_FILE, which CACertPEM was read from: re-read when it changes and after a TLS failure
	AllowHTTP      bool          // plain http:// URLs only when true (dev)
	APIKey         redact.String // CONJUR_AUTHN_API_KEY: development only
	CredentialFile string        // CONJUR_SWARM_CREDENTIAL_FILE: API key text or credential JSON; re-read at each authentication
	JWTServiceID   string        // CONJUR_AUTHN_JWT_SERVICE_ID
	JWTTokenPath   string        // JWT_TOKEN_PATH: re-read at each authentication
	JWTHostID      string        // CONJUR_AUTHN_JWT_HOST_ID (optional)
	AuthnType      string        // CONJUR_AUTHN_TYPE: "" (API key or JWT), AuthnCert, AuthnAzure, AuthnGCP or AuthnIAM
	ServiceID      string        // CONJUR_SERVICE_ID: the authenticator's service id (authn-cert/<id>, authn-azure/<id>, authn-iam/<id>)
	ClientCertFile string        // CONJUR_AUTHN_CERT_FILE: authn-cert's client certificate, re-read at each authentication
	ClientKeyFile  string        // CONJUR_AUTHN_CERT_KEY_FILE: its key, re-read at each authentication
	AzureClientID  string        // CONJUR_AUTHN_AZURE_CLIENT_ID: the user-assigned managed identity (authn-azure); "" = the system-assigned one
	IAMRegion      string        // CONJUR_AUTHN_IAM_REGION: the STS region authn-iam's request is signed for; "" = the global endpoint (us-east-1)
	MetadataURL    string        // the instance metadata service's base URL ("" = the cloud's own); tests point it at a fake
	FetchTimeout   time.Duration // default 5s; must be > 0 and < 30s
	MaxInFlight    int           // CONJUR_SWARM_MAX_IN_FLIGHT: the ceiling of the adaptive request window (default 32)
	MaxBatch       int           // default 100
	CacheTTL       time.Duration // 0 = off (default)

	// AWS credentials of authn-iam (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN); empty = the instance role's, from IMDSv2.
	AWSAccessKeyID     redact.String
	AWSSecretAccessKey redact.String
	AWSSessionToken    redact.String

	Environment string // CONJUR_ENVIRONMENT: "" detects Conjur Cloud from the URL; saas, self-hosted or oss forces it

	Proxy               string // CONJUR_SWARM_PROXY: http://HOST:PORT; every connection to Conjur is a CONNECT tunnel through it
	ProxyCredentialFile string // CONJUR_SWARM_PROXY_CREDENTIAL_FILE: user:password for the proxy, read for each new tunnel

	// Signer turns on the per-request identity mode (CONJUR_SWARM_IDENTITY=per-request,
	// identity.go): each Get is made as its Ref.Workload's identity, through
	// authn-jwt/JWTServiceID with a JWT Signer signs. nil: the single-identity modes.
	Signer        Signer
	MaxIdentities int // identities kept at once in that mode (default DefaultMaxIdentities)

	// Now is the clock of tokens, the value cache and the last-good values
	// (default time.Now); tests move it.
	Now func() time.Time `json:"-"`
}

// String describes the configuration (the API key redacted by its type).
func (c Config) String() string {
	return fmt.Sprintf("conjur.Config{urls=%v account=%q login=%q api_key=%q credential_file=%q jwt_service=%q jwt_path=%q fetch_timeout=%s max_in_flight=%d max_batch=%d cache_ttl=%s allow_http=%t ca=%t proxy=%q proxy_credential_file=%q per_request_identity=%t authn_type=%q service_id=%q client_cert_file=%q client_key_file=%q iam_region=%q aws_access_key_id=%q}",
		c.ApplianceURLs, c.Account, c.Login, c.APIKey, c.CredentialFile, c.JWTServiceID, c.JWTTokenPath,
		c.FetchTimeout, c.MaxInFlight, c.MaxBatch, c.CacheTTL, c.AllowHTTP, len(c.CACertPEM) > 0,
		redactUserinfo(c.Proxy), c.ProxyCredentialFile, c.Signer != nil, c.AuthnType, c.ServiceID, c.ClientCertFile, c.ClientKeyFile, c.IAMRegion, c.AWSAccessKeyID)
}

// Validate reports every problem at once, naming the setting to fix. A zero
// FetchTimeout, MaxInFlight or MaxBatch means "use the default".
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.ApplianceURLs) == 0 {
		bad("CONJUR_APPLIANCE_URL is not set: give the Conjur URL (https://conjur.example.com), or several separated by commas")
	}
	seen := map[string]bool{}
	for _, raw := range c.ApplianceURLs {
		if err := checkURL(raw, c.AllowHTTP); err != nil {
			errs = append(errs, err)
			continue
		}
		norm := strings.TrimRight(raw, "/")
		if seen[norm] {
			bad("CONJUR_APPLIANCE_URL lists %q twice: give each appliance once", raw)
		}
		seen[norm] = true
	}
	if c.Proxy != "" {
		if err := checkProxy(c.Proxy); err != nil {
			errs = append(errs, err)
		}
	} else if c.ProxyCredentialFile != "" {
		bad("CONJUR_SWARM_PROXY_CREDENTIAL_FILE is set but CONJUR_SWARM_PROXY is not: set the proxy (http://HOST:PORT) or clear the credential file setting")
	}
	if err := checkEnvironment(c.Environment); err != nil {
		errs = append(errs, err)
	}
	if EffectiveAccount(c.Account, c.ApplianceURLs) == "" { // Conjur Cloud's is always "conjur"
		bad("CONJUR_ACCOUNT is not set: give the Conjur account name (the first part of every Conjur id, e.g. \"myorg\")")
	} else if strings.ContainsAny(c.Account, ":/ \t\n") {
		bad("CONJUR_ACCOUNT %q contains ':', '/' or whitespace: give the bare account name", c.Account)
	}
	switch {
	case !slices.Contains(authnTypes, c.AuthnType):
		bad("CONJUR_AUTHN_TYPE is %q: give cert (authn-cert with the node certificate), iam, azure or gcp (the VM's identity), or leave it empty for an API key or a JWT", c.AuthnType)
	case c.AuthnType != "":
		errs = append(errs, c.authnTypeProblems()...)
	case c.ServiceID != "" || c.ClientCertFile != "" || c.ClientKeyFile != "" || c.AzureClientID != "":
		bad("CONJUR_SERVICE_ID, CONJUR_AUTHN_CERT_FILE, CONJUR_AUTHN_CERT_KEY_FILE or CONJUR_AUTHN_AZURE_CLIENT_ID is set without CONJUR_AUTHN_TYPE: set CONJUR_AUTHN_TYPE (cert, iam, azure or gcp), or clear them")
	case c.Signer != nil:
		errs = append(errs, c.perRequestProblems()...)
	}
	errs = append(errs, c.iamProblems()...)
	if c.Login == "" && c.JWTServiceID == "" && c.Signer == nil {
		bad("CONJUR_AUTHN_LOGIN is not set: give the plugin's Conjur identity, e.g. host/swarm/conjur-plugin (or set CONJUR_AUTHN_JWT_SERVICE_ID for authn-jwt)")
	}
	if c.Login != "" && (strings.TrimSpace(c.Login) != c.Login || strings.ContainsAny(c.Login, "\n\r\t")) {
		bad("CONJUR_AUTHN_LOGIN has surrounding whitespace or control characters: give it exactly, e.g. host/swarm/conjur-plugin")
	}
	if len(c.CACertPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CACertPEM) {
			bad("CONJUR_SSL_CERTIFICATE / CONJUR_CERT_FILE holds no PEM certificate: give the CA certificate that signed Conjur's certificate (-----BEGIN CERTIFICATE-----)")
		}
	}
	errs = append(errs, c.credentialProblems()...)
	if c.FetchTimeout < 0 || c.FetchTimeout >= MaxFetchTimeout {
		bad("CONJUR_SWARM_FETCH_TIMEOUT is %s: give a duration above 0 and below %s (Swarm waits at most 30s for the plugin), e.g. 5s", c.FetchTimeout, MaxFetchTimeout)
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > MaxMaxInFlight {
		bad("CONJUR_SWARM_MAX_IN_FLIGHT is %d: give %d up to %d (default %d)", c.MaxInFlight, MinMaxInFlight, MaxMaxInFlight, DefaultMaxInFlight)
	}
	if c.MaxBatch < 0 || c.MaxBatch > MaxMaxBatch {
		bad("max batch is %d: give 0 (default %d) up to %d", c.MaxBatch, DefaultMaxBatch, MaxMaxBatch)
	}
	if c.CacheTTL < 0 || c.CacheTTL > MaxCacheTTL {
		bad("CONJUR_SWARM_CACHE_TTL is %s: give 0 (off) or a short duration up to %s, e.g. 30s", c.CacheTTL, MaxCacheTTL)
	}
	return errors.Join(errs...)
}

// credentialProblems lists what is wrong with the credential settings: more
// than one source, or a part without the setting it needs.
func (c Config) credentialProblems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	sources := 0
	for _, s := range []string{c.APIKey.Reveal(), c.CredentialFile, c.JWTTokenPath} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		bad("more than one of CONJUR_AUTHN_API_KEY, CONJUR_SWARM_CREDENTIAL_FILE and JWT_TOKEN_PATH is set: keep exactly one credential source (or none and use the handoff)")
	}
	if c.APIKey != "" && c.Login == "" {
		bad("CONJUR_AUTHN_API_KEY is set without CONJUR_AUTHN_LOGIN: set the login the key belongs to")
	}
	if c.JWTTokenPath != "" && c.JWTServiceID == "" {
		bad("JWT_TOKEN_PATH is set without CONJUR_AUTHN_JWT_SERVICE_ID: set the authn-jwt service id configured in Conjur")
	}
	if c.JWTHostID != "" && c.JWTServiceID == "" {
		bad("CONJUR_AUTHN_JWT_HOST_ID is set without CONJUR_AUTHN_JWT_SERVICE_ID: set the authn-jwt service id")
	}
	if c.JWTServiceID != "" && strings.ContainsAny(c.JWTServiceID, "/ \t\n") {
		bad("CONJUR_AUTHN_JWT_SERVICE_ID %q contains '/' or whitespace: give the service id only (the part after conjur/authn-jwt/)", c.JWTServiceID)
	}
	return errs
}

func checkURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("CONJUR_APPLIANCE_URL entry %q is not an absolute URL: give it as https://host[:port][/path]", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return fmt.Errorf("CONJUR_APPLIANCE_URL entry %q uses plain http: use https (plain http is for the development server only)", raw)
		}
	default:
		return fmt.Errorf("CONJUR_APPLIANCE_URL entry %q has scheme %q: use https://", raw, u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("CONJUR_APPLIANCE_URL entry %q carries credentials, a query or a fragment: give scheme, host, port and path only", raw)
	}
	return nil
}

// perRequestProblems lists what the per-request identity mode cannot have:
// the plugin signs its own JWTs, so there is no credential to configure.
func (c Config) perRequestProblems() []error {
	var errs []error
	if c.JWTServiceID == "" {
		errs = append(errs, errors.New("CONJUR_SWARM_IDENTITY=per-request needs CONJUR_AUTHN_JWT_SERVICE_ID: give the authn-jwt service id whose public-keys hold the managers' keys"))
	}
	for _, s := range []struct{ name, value string }{
		{"CONJUR_AUTHN_LOGIN", c.Login}, {"CONJUR_AUTHN_API_KEY", c.APIKey.Reveal()}, {"CONJUR_SWARM_CREDENTIAL_FILE", c.CredentialFile},
		{"JWT_TOKEN_PATH", c.JWTTokenPath}, {"CONJUR_AUTHN_JWT_HOST_ID", c.JWTHostID},
	} {
		if s.value != "" {
			errs = append(errs, fmt.Errorf("%s is set but CONJUR_SWARM_IDENTITY=per-request signs a JWT for each identity the mapping chooses: clear %s (no credential is configured or handed over in this mode)", s.name, s.name))
		}
	}
	if c.MaxIdentities < 0 {
		errs = append(errs, fmt.Errorf("the identity pool bound is %d: give 0 (default %d) or more", c.MaxIdentities, DefaultMaxIdentities))
	}
	return errs
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	c.Account = EffectiveAccount(c.Account, c.ApplianceURLs)
	if c.FetchTimeout == 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxIdentities == 0 {
		c.MaxIdentities = DefaultMaxIdentities
	}
	urls := make([]string, len(c.ApplianceURLs))
	for i, u := range c.ApplianceURLs {
		urls[i] = strings.TrimRight(u, "/")
	}
	c.ApplianceURLs = urls
	c.CACertPEM = append([]byte(nil), c.CACertPEM...)
	return c
}
