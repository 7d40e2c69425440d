package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/identity"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// Config is the typed configuration of `serve`, read once at start by
// loadConfig. The settings table (settings.go) fills every field; a secret
// field has a redact type, so Config prints normally and never shows it.
type Config struct {
	Socket          string
	MappingFile     string
	LogLevel        string
	LogFormat       string
	FetchTimeout    time.Duration
	CacheTTL        time.Duration
	MaxInFlight     int
	Prefetch        bool
	CredentialFile  string
	MetricsListen   string
	AuditSyslog     string
	AuditSyslogCA   string
	AllowHTTP       bool
	ShutdownTimeout time.Duration

	Conjur   ConjurSettings
	Identity IdentitySettings
}

// identityPerRequest is CONJUR_SWARM_IDENTITY's per-request mode.
const identityPerRequest = "per-request"

// IdentitySettings are the per-request identity mode's (CONJUR_SWARM_IDENTITY).
type IdentitySettings struct {
	Mode          string // "" or identityPerRequest
	Issuer        string
	Audience      string
	TokenLifetime time.Duration
	StateDir      string
}

// ConjurSettings are Conjur's own settings, under conjur-api-go's names.
type ConjurSettings struct {
	ApplianceURLs       []string
	Account             string
	Login               string
	CertFile            string
	SSLCertificate      redact.String // PEM text; not a secret, but long and never useful in a log
	APIKey              redact.String // development only
	JWTServiceID        string
	JWTTokenPath        string
	JWTHostID           string
	Environment         string
	Proxy               string
	ProxyCredentialFile string
	AuthnType           string // "" or one of conjur's Authn* modes
	ServiceID           string
	ClientCertFile      string
	ClientKeyFile       string
	AzureClientID       string
	IAMRegion           string
	AWSAccessKeyID      redact.String // authn-iam's credentials when not the instance role's
	AWSSecretAccessKey  redact.String
	AWSSessionToken     redact.String
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

// addSettingFlags defines the flags of the settings that have one; given
// keys, only of those.
func addSettingFlags(fs *pflag.FlagSet, keys ...string) {
	for _, s := range settings {
		switch {
		case s.flag == "", len(keys) > 0 && !slices.Contains(keys, s.key):
		case s.value.isBool():
			fs.Bool(s.flag, s.def == "true", s.help+" ("+s.env+")")
		default:
			fs.String(s.flag, s.def, s.help+" ("+s.env+")")
		}
	}
}

// loadConfig reads the configuration once from v (after bindSettings) and
// checks every setting, reporting every problem at once with the name of the
// environment variable to fix. Conjur's settings are checked later by the
// Conjur client (conjur.Config.Validate): without them the plugin still
// starts and answers NOT_CONFIGURED.
func loadConfig(v *viper.Viper) (Config, error) {
	var c Config
	var errs []error
	for _, s := range settings {
		if err := s.value.set(&c, v.GetString(s.key)); err != nil {
			errs = append(errs, fmt.Errorf("%s %w", s.env, err))
		}
	}
	c.Conjur.Account = conjur.EffectiveAccount(c.Conjur.Account, c.Conjur.ApplianceURLs)
	if c.Identity.Mode == identityPerRequest && strings.TrimSpace(c.Identity.Issuer) == "" {
		errs = append(errs, errors.New("CONJUR_SWARM_IDENTITY_ISSUER is not set: CONJUR_SWARM_IDENTITY=per-request needs the issuer of the JWTs the plugin signs, equal to the authn-jwt service's issuer variable (e.g. https://swarm.example.com)"))
	}
	if c.Conjur.CertFile != "" && c.Conjur.SSLCertificate != "" {
		errs = append(errs, errors.New("CONJUR_CERT_FILE and CONJUR_SSL_CERTIFICATE are both set: keep one"))
	}
	return c, errors.Join(errs...)
}

// conjurConfig is the Conjur client's configuration from these settings and
// the CA certificate read by caPEM.
func (c Config) conjurConfig(ca []byte) conjur.Config {
	s := c.Conjur
	cc := conjur.Config{
		ApplianceURLs:  s.ApplianceURLs,
		Account:        s.Account,
		Login:          s.Login,
		CACertPEM:      ca,
		CACertFile:     s.CertFile, // re-read when it changes and after a TLS failure
		AllowHTTP:      c.AllowHTTP,
		APIKey:         s.APIKey,
		CredentialFile: c.CredentialFile,
		JWTServiceID:   s.JWTServiceID,
		JWTTokenPath:   s.JWTTokenPath,
		JWTHostID:      s.JWTHostID,
		AuthnType:      s.AuthnType,
		ServiceID:      s.ServiceID,
		AzureClientID:  s.AzureClientID,
		IAMRegion:      s.IAMRegion, // ours: refused outside iam, as AzureClientID outside azure
		FetchTimeout:   c.FetchTimeout,
		CacheTTL:       c.CacheTTL,
		MaxInFlight:    c.MaxInFlight,

		Environment:         s.Environment,
		Proxy:               s.Proxy,
		ProxyCredentialFile: s.ProxyCredentialFile,
	}
	switch s.AuthnType {
	case conjur.AuthnCert: // the files' defaults mean nothing in the other modes
		cc.ClientCertFile, cc.ClientKeyFile = s.ClientCertFile, s.ClientKeyFile
	case conjur.AuthnIAM: // the AWS_* variables may be set for other tools in the other modes
		cc.AWSAccessKeyID, cc.AWSSecretAccessKey, cc.AWSSessionToken = s.AWSAccessKeyID, s.AWSSecretAccessKey, s.AWSSessionToken
	}
	return cc
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

// String lists every setting as key=value, secrets redacted.
func (c Config) String() string {
	parts := make([]string, len(settings))
	for i, s := range settings {
		parts[i] = s.key + "=" + s.value.show(&c)
	}
	return strings.Join(parts, " ")
}

// MarshalLogObject writes every setting to a zap line, secrets redacted.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, s := range settings {
		enc.AddString(s.key, s.value.show(&c))
	}
	return nil
}

// signer opens this manager's signing keys (generating the key at first
// start) and returns the signer of the per-request identity mode; nil (and
// no error) in the single-identity modes.
func (s IdentitySettings) signer() (conjur.Signer, error) {
	if s.Mode != identityPerRequest {
		return nil, nil
	}
	keys, err := identity.Open(s.StateDir)
	if err != nil {
		return nil, fmt.Errorf("CONJUR_SWARM_IDENTITY_STATE_DIR: %w; the plugin's state mount must be a private host directory: `install -d -m 0700 /var/lib/conjur-swarm` and `docker plugin set PLUGIN state.source=/var/lib/conjur-swarm`", err)
	}
	signer, err := identity.NewSigner(keys, identity.Options{Issuer: s.Issuer, Audience: s.Audience, Lifetime: s.TokenLifetime})
	if err != nil {
		return nil, err
	}
	return signer, nil
}
