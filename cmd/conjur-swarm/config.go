package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"
)

// setting is one key of the plugin's configuration: where it comes from,
// its default, and the flag (if any) that overrides it.
type setting struct {
	key  string // viper key and mapstructure tag
	env  string
	def  string
	flag string // "" = environment only (credentials never get a flag)
	help string
}

// settings lists every key `serve` reads. docs/install.md's settings
// reference mirrors this table.
var settings = []setting{
	{"socket", "CONJUR_SWARM_SOCKET", "/run/docker/plugins/conjur.sock", "socket", "unix socket the plugin listens on"},
	{"mapping_file", "CONJUR_SWARM_MAPPING_FILE", "", "mapping-file", "mapping policy YAML; empty = the built-in by-label rule"},
	{"log_level", "CONJUR_SWARM_LOG_LEVEL", "info", "log-level", "debug, info, warn or error"},
	{"log_format", "CONJUR_SWARM_LOG_FORMAT", "json", "log-format", "json or console"},
	{"fetch_timeout", "CONJUR_SWARM_FETCH_TIMEOUT", "5s", "fetch-timeout", "deadline of one Conjur fetch (above 0, below 30s)"},
	{"cache_ttl", "CONJUR_SWARM_CACHE_TTL", "0s", "cache-ttl", "value cache lifetime; 0 = off; never used for reuse: false rules"},
	{"credential_file", "CONJUR_SWARM_CREDENTIAL_FILE", "", "credential-file", "file with the API key or credential JSON, re-read at each authentication"},
	{"metrics_listen", "CONJUR_SWARM_METRICS_LISTEN", "", "metrics-listen", "host:port for Prometheus /metrics; empty = off"},
	{"allow_http", "CONJUR_SWARM_ALLOW_HTTP", "false", "allow-http", "allow plain http:// Conjur URLs (development only)"},
	{"shutdown_timeout", "CONJUR_SWARM_SHUTDOWN_TIMEOUT", "8s", "shutdown-timeout", "how long to let in-flight requests finish on SIGTERM (Docker kills a plugin 10s after it)"},

	{"appliance_url", "CONJUR_APPLIANCE_URL", "", "", "Conjur URL(s), comma-separated (followers are tried in order)"},
	{"account", "CONJUR_ACCOUNT", "", "", "Conjur account"},
	{"authn_login", "CONJUR_AUTHN_LOGIN", "", "", "the plugin's Conjur identity, e.g. host/swarm/conjur-plugin"},
	{"cert_file", "CONJUR_CERT_FILE", "", "", "PEM file of the CA that signed Conjur's certificate"},
	{"ssl_certificate", "CONJUR_SSL_CERTIFICATE", "", "", "the same CA as PEM text"},
	{"authn_api_key", "CONJUR_AUTHN_API_KEY", "", "", "API key (development only: it shows in docker plugin inspect)"},
	{"authn_jwt_service_id", "CONJUR_AUTHN_JWT_SERVICE_ID", "", "", "authn-jwt service id"},
	{"jwt_token_path", "JWT_TOKEN_PATH", "", "", "file holding the JWT for authn-jwt, re-read at each authentication"},
	{"authn_jwt_host_id", "CONJUR_AUTHN_JWT_HOST_ID", "", "", "host id for authn-jwt (optional)"},
}

// rawSettings is what viper unmarshals: every value as text, so that each
// bad value is reported with its setting's name rather than a decoder path.
type rawSettings struct {
	Socket          string `mapstructure:"socket"`
	MappingFile     string `mapstructure:"mapping_file"`
	LogLevel        string `mapstructure:"log_level"`
	LogFormat       string `mapstructure:"log_format"`
	FetchTimeout    string `mapstructure:"fetch_timeout"`
	CacheTTL        string `mapstructure:"cache_ttl"`
	CredentialFile  string `mapstructure:"credential_file"`
	MetricsListen   string `mapstructure:"metrics_listen"`
	AllowHTTP       string `mapstructure:"allow_http"`
	ShutdownTimeout string `mapstructure:"shutdown_timeout"`

	ApplianceURL      string `mapstructure:"appliance_url"`
	Account           string `mapstructure:"account"`
	AuthnLogin        string `mapstructure:"authn_login"`
	CertFile          string `mapstructure:"cert_file"`
	SSLCertificate    string `mapstructure:"ssl_certificate"`
	AuthnAPIKey       string `mapstructure:"authn_api_key"`
	AuthnJWTServiceID string `mapstructure:"authn_jwt_service_id"`
	JWTTokenPath      string `mapstructure:"jwt_token_path"`
	AuthnJWTHostID    string `mapstructure:"authn_jwt_host_id"`
}

// Config is the typed configuration of `serve`, read once at start.
type Config struct {
	Socket          string
	MappingFile     string
	LogLevel        string
	LogFormat       string
	FetchTimeout    time.Duration
	CacheTTL        time.Duration
	CredentialFile  string
	MetricsListen   string
	AllowHTTP       bool
	ShutdownTimeout time.Duration

	Conjur ConjurSettings
}

// ConjurSettings are Conjur's own settings, under conjur-api-go's names.
type ConjurSettings struct {
	ApplianceURLs  []string
	Account        string
	Login          string
	CertFile       string
	SSLCertificate string // PEM text
	APIKey         string // development only
	JWTServiceID   string
	JWTTokenPath   string
	JWTHostID      string
}

// bindSettings registers every key's default and environment variable with
// v, and binds the flags that exist in fs (fs may be nil).
func bindSettings(v *viper.Viper, fs *pflag.FlagSet) error {
	var errs []error
	for _, s := range settings {
		v.SetDefault(s.key, s.def)
		if err := v.BindEnv(s.key, s.env); err != nil {
			errs = append(errs, err)
		}
		if s.flag == "" || fs == nil {
			continue
		}
		if f := fs.Lookup(s.flag); f != nil {
			if err := v.BindPFlag(s.key, f); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// addSettingFlags defines the flags of the keys that have one.
func addSettingFlags(fs *pflag.FlagSet) {
	for _, s := range settings {
		if s.flag == "" {
			continue
		}
		if s.key == "allow_http" {
			fs.Bool(s.flag, false, s.help+" ("+s.env+")")
			continue
		}
		fs.String(s.flag, s.def, s.help+" ("+s.env+")")
	}
}

// loadConfig reads the configuration once from v (after bindSettings) and
// checks our own settings, reporting every problem at once with the name of
// the environment variable to fix. Conjur's settings are checked later by
// the Conjur client (conjur.Config.Validate): without them the plugin still
// starts and answers NOT_CONFIGURED.
func loadConfig(v *viper.Viper) (Config, error) {
	var raw rawSettings
	if err := v.Unmarshal(&raw); err != nil {
		return Config{}, fmt.Errorf("reading the settings: %w", err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	duration := func(env, val string, min, max time.Duration, minOK bool, example string) time.Duration {
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil {
			bad("%s is %q: give a duration such as %s", env, val, example)
			return 0
		}
		if d < min || (d == min && !minOK) || d > max {
			lo := "above"
			if minOK {
				lo = "from"
			}
			bad("%s is %s: give a duration %s %s up to %s, e.g. %s", env, d, lo, min, max, example)
		}
		return d
	}

	c := Config{
		Socket:         strings.TrimSpace(raw.Socket),
		MappingFile:    strings.TrimSpace(raw.MappingFile),
		LogLevel:       strings.ToLower(strings.TrimSpace(raw.LogLevel)),
		LogFormat:      strings.ToLower(strings.TrimSpace(raw.LogFormat)),
		CredentialFile: strings.TrimSpace(raw.CredentialFile),
		MetricsListen:  strings.TrimSpace(raw.MetricsListen),
		Conjur: ConjurSettings{
			ApplianceURLs:  splitList(raw.ApplianceURL),
			Account:        strings.TrimSpace(raw.Account),
			Login:          strings.TrimSpace(raw.AuthnLogin),
			CertFile:       strings.TrimSpace(raw.CertFile),
			SSLCertificate: raw.SSLCertificate,
			APIKey:         strings.TrimSpace(raw.AuthnAPIKey),
			JWTServiceID:   strings.TrimSpace(raw.AuthnJWTServiceID),
			JWTTokenPath:   strings.TrimSpace(raw.JWTTokenPath),
			JWTHostID:      strings.TrimSpace(raw.AuthnJWTHostID),
		},
	}
	if c.Socket == "" {
		bad("CONJUR_SWARM_SOCKET is empty: give the socket path, e.g. /run/docker/plugins/conjur.sock")
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil || c.LogLevel == "" || lvl > zapcore.ErrorLevel {
		bad("CONJUR_SWARM_LOG_LEVEL is %q: give debug, info, warn or error", raw.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("CONJUR_SWARM_LOG_FORMAT is %q: give json or console", raw.LogFormat)
	}
	c.FetchTimeout = duration("CONJUR_SWARM_FETCH_TIMEOUT", raw.FetchTimeout, 0, 29*time.Second, false, "5s")
	c.CacheTTL = duration("CONJUR_SWARM_CACHE_TTL", raw.CacheTTL, 0, 10*time.Minute, true, "30s")
	c.ShutdownTimeout = duration("CONJUR_SWARM_SHUTDOWN_TIMEOUT", raw.ShutdownTimeout, 0, 5*time.Minute, false, "8s")
	if c.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(c.MetricsListen); err != nil || port == "" {
			bad("CONJUR_SWARM_METRICS_LISTEN is %q: give host:port, e.g. 127.0.0.1:9090, or leave it empty", raw.MetricsListen)
		}
	}
	allow, err := strconv.ParseBool(strings.TrimSpace(raw.AllowHTTP))
	if err != nil {
		bad("CONJUR_SWARM_ALLOW_HTTP is %q: give true or false", raw.AllowHTTP)
	}
	c.AllowHTTP = allow
	if c.Conjur.CertFile != "" && c.Conjur.SSLCertificate != "" {
		bad("CONJUR_CERT_FILE and CONJUR_SSL_CERTIFICATE are both set: keep one")
	}
	return c, errors.Join(errs...)
}

// caPEM returns the Conjur CA certificate: CONJUR_SSL_CERTIFICATE's text, or
// the content of CONJUR_CERT_FILE.
func (s ConjurSettings) caPEM() ([]byte, error) {
	if s.SSLCertificate != "" {
		return []byte(s.SSLCertificate), nil
	}
	if s.CertFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(s.CertFile)
	if err != nil {
		return nil, fmt.Errorf("CONJUR_CERT_FILE %s cannot be read: %w; mount the CA directory (plugin mount \"ca\") and name a file in it", s.CertFile, err)
	}
	return data, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// String describes the configuration with credentials redacted.
func (c Config) String() string {
	return fmt.Sprintf("socket=%s mapping_file=%q log_level=%s log_format=%s fetch_timeout=%s cache_ttl=%s credential_file=%q metrics_listen=%q allow_http=%t shutdown_timeout=%s conjur={%s}",
		c.Socket, c.MappingFile, c.LogLevel, c.LogFormat, c.FetchTimeout, c.CacheTTL, c.CredentialFile, c.MetricsListen, c.AllowHTTP, c.ShutdownTimeout, c.Conjur)
}

// GoString redacts like String.
func (c Config) GoString() string { return c.String() }

// Format redacts in every verb.
func (c Config) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, c.String()) }

// MarshalJSON writes the redacted description (the default encoding would
// write the API key).
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// MarshalLogObject writes the configuration to a zap line, redacted.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("socket", c.Socket)
	enc.AddString("mapping_file", c.MappingFile)
	enc.AddString("log_level", c.LogLevel)
	enc.AddString("log_format", c.LogFormat)
	enc.AddDuration("fetch_timeout", c.FetchTimeout)
	enc.AddDuration("cache_ttl", c.CacheTTL)
	enc.AddString("credential_file", c.CredentialFile)
	enc.AddString("metrics_listen", c.MetricsListen)
	enc.AddBool("allow_http", c.AllowHTTP)
	enc.AddDuration("shutdown_timeout", c.ShutdownTimeout)
	return enc.AddObject("conjur", c.Conjur)
}

// String describes Conjur's settings with the API key and CA redacted.
func (s ConjurSettings) String() string {
	return fmt.Sprintf("urls=%v account=%q login=%q cert_file=%q ssl_certificate=%s api_key=%s jwt_service_id=%q jwt_token_path=%q jwt_host_id=%q",
		s.ApplianceURLs, s.Account, s.Login, s.CertFile, presence(s.SSLCertificate), redacted(s.APIKey), s.JWTServiceID, s.JWTTokenPath, s.JWTHostID)
}

// GoString redacts like String.
func (s ConjurSettings) GoString() string { return s.String() }

// Format redacts in every verb.
func (s ConjurSettings) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, s.String()) }

// MarshalJSON writes the redacted description (the default encoding would
// write the API key).
func (s ConjurSettings) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalLogObject writes Conjur's settings to a zap line, redacted.
func (s ConjurSettings) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("appliance_url", strings.Join(s.ApplianceURLs, ","))
	enc.AddString("account", s.Account)
	enc.AddString("authn_login", s.Login)
	enc.AddString("cert_file", s.CertFile)
	enc.AddString("ssl_certificate", presence(s.SSLCertificate))
	enc.AddString("authn_api_key", redacted(s.APIKey))
	enc.AddString("authn_jwt_service_id", s.JWTServiceID)
	enc.AddString("jwt_token_path", s.JWTTokenPath)
	enc.AddString("authn_jwt_host_id", s.JWTHostID)
	return nil
}

func redacted(s string) string {
	if s == "" {
		return "unset"
	}
	return "[REDACTED]"
}

func presence(s string) string {
	if s == "" {
		return "unset"
	}
	return fmt.Sprintf("set (%d bytes)", len(s))
}
