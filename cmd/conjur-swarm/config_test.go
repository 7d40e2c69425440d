package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// clearEnv blanks every setting's variable (viper treats empty as unset).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, s := range settings {
		t.Setenv(s.env, "")
	}
}

func load(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	clearEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addSettingFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags: %v", err)
	}
	v := viper.New()
	if err := bindSettings(v, fs); err != nil {
		t.Fatalf("bind: %v", err)
	}
	return loadConfig(v)
}

func TestLoadConfig(t *testing.T) {
	// Every setting's declared default, through its own field: a default
	// is written once, in settings.go.
	var defaults Config
	for _, st := range settings {
		if err := st.value.set(&defaults, st.def); err != nil && st.def != "" {
			t.Fatalf("%s: the declared default %q is refused: %v", st.env, st.def, err)
		}
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want func(c *Config)
	}{
		{name: "ok/defaults", want: func(*Config) {}},
		{
			name: "ok/environment",
			env: map[string]string{
				"CONJUR_SWARM_SOCKET":           "/tmp/x.sock",
				"CONJUR_SWARM_MAPPING_FILE":     "/etc/conjur-swarm/mapping/mapping.yml",
				"CONJUR_SWARM_LOG_LEVEL":        "DEBUG",
				"CONJUR_SWARM_LOG_FORMAT":       "console",
				"CONJUR_SWARM_FETCH_TIMEOUT":    "2s",
				"CONJUR_SWARM_CACHE_TTL":        "30s",
				"CONJUR_SWARM_MAX_IN_FLIGHT":    "16",
				"CONJUR_SWARM_CREDENTIAL_FILE":  "/etc/conjur-swarm/identity/credential.json",
				"CONJUR_SWARM_METRICS_LISTEN":   "127.0.0.1:9090",
				"CONJUR_SWARM_ALLOW_HTTP":       "true",
				"CONJUR_SWARM_SHUTDOWN_TIMEOUT": "3s",
				"CONJUR_APPLIANCE_URL":          "https://a.example, https://b.example ,",
				"CONJUR_ACCOUNT":                "myorg",
				"CONJUR_AUTHN_LOGIN":            "host/swarm/conjur-plugin",
				"CONJUR_CERT_FILE":              "/etc/conjur-swarm/ca/conjur.pem",
				"CONJUR_AUTHN_JWT_SERVICE_ID":   "swarm",
				"JWT_TOKEN_PATH":                "/etc/conjur-swarm/identity/jwt",
				"CONJUR_AUTHN_JWT_HOST_ID":      "swarm/conjur-plugin",
			},
			want: func(c *Config) {
				c.Socket = "/tmp/x.sock"
				c.MappingFile = "/etc/conjur-swarm/mapping/mapping.yml"
				c.LogLevel, c.LogFormat = "debug", "console"
				c.FetchTimeout, c.CacheTTL, c.ShutdownTimeout = 2*time.Second, 30*time.Second, 3*time.Second
				c.MaxInFlight = 16
				c.CredentialFile = "/etc/conjur-swarm/identity/credential.json"
				c.MetricsListen = "127.0.0.1:9090"
				c.AllowHTTP = true
				c.Conjur = ConjurSettings{
					ApplianceURLs:  []string{"https://a.example", "https://b.example"},
					Account:        "myorg",
					Login:          "host/swarm/conjur-plugin",
					CertFile:       "/etc/conjur-swarm/ca/conjur.pem",
					JWTServiceID:   "swarm",
					JWTTokenPath:   "/etc/conjur-swarm/identity/jwt",
					JWTHostID:      "swarm/conjur-plugin",
					ClientCertFile: c.Conjur.ClientCertFile, ClientKeyFile: c.Conjur.ClientKeyFile, // their defaults
				}
			},
		},
		{
			name: "ok/flags beat the environment",
			env:  map[string]string{"CONJUR_SWARM_SOCKET": "/env.sock", "CONJUR_SWARM_LOG_LEVEL": "warn"},
			args: []string{"--socket", "/flag.sock", "--allow-http", "--fetch-timeout", "1s"},
			want: func(c *Config) {
				c.Socket, c.LogLevel, c.AllowHTTP, c.FetchTimeout = "/flag.sock", "warn", true, time.Second
			},
		},
		{
			name: "ok/per-request identity",
			env: map[string]string{"CONJUR_SWARM_IDENTITY": "per-request", "CONJUR_SWARM_IDENTITY_ISSUER": "https://swarm.example",
				"CONJUR_SWARM_IDENTITY_AUDIENCE": "conjur", "CONJUR_SWARM_IDENTITY_TOKEN_LIFETIME": "2m", "CONJUR_SWARM_IDENTITY_STATE_DIR": "/state"},
			want: func(c *Config) {
				c.Identity = IdentitySettings{Mode: "per-request", Issuer: "https://swarm.example", Audience: "conjur", TokenLifetime: 2 * time.Minute, StateDir: "/state"}
			},
		},
		{
			name: "ok/authn-cert with the node certificate",
			env:  map[string]string{"CONJUR_AUTHN_TYPE": "CERT", "CONJUR_SERVICE_ID": "swarm"},
			want: func(c *Config) { c.Conjur.AuthnType, c.Conjur.ServiceID = "cert", "swarm" },
		},
		{
			name: "ok/authn-iam with credentials from the environment",
			env: map[string]string{"CONJUR_AUTHN_TYPE": "iam", "CONJUR_SERVICE_ID": "prod", "CONJUR_AUTHN_IAM_REGION": "eu-west-1",
				"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "aws-secret", "AWS_SESSION_TOKEN": "aws-token"},
			want: func(c *Config) {
				c.Conjur.AuthnType, c.Conjur.ServiceID, c.Conjur.IAMRegion = "iam", "prod", "eu-west-1"
				c.Conjur.AWSAccessKeyID, c.Conjur.AWSSecretAccessKey, c.Conjur.AWSSessionToken = "ASIAEXAMPLE", "aws-secret", "aws-token"
			},
		},
		{
			name: "ok/cache ttl zero and the dev API key",
			env:  map[string]string{"CONJUR_SWARM_CACHE_TTL": "0", "CONJUR_AUTHN_API_KEY": " k3y "},
			want: func(c *Config) { c.Conjur.APIKey = "k3y" },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := load(t, tc.env, tc.args...)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			want := defaults
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // every one must appear in the error
	}{
		{
			name: "fail/every problem at once",
			env: map[string]string{
				"CONJUR_SWARM_SOCKET":           " ",
				"CONJUR_SWARM_LOG_LEVEL":        "chatty",
				"CONJUR_SWARM_LOG_FORMAT":       "xml",
				"CONJUR_SWARM_FETCH_TIMEOUT":    "5x",
				"CONJUR_SWARM_CACHE_TTL":        "-1s",
				"CONJUR_SWARM_METRICS_LISTEN":   "9090",
				"CONJUR_SWARM_ALLOW_HTTP":       "maybe",
				"CONJUR_SWARM_SHUTDOWN_TIMEOUT": "0s",
				"CONJUR_CERT_FILE":              "/ca.pem",
				"CONJUR_SSL_CERTIFICATE":        "-----BEGIN CERTIFICATE-----",
			},
			want: []string{
				"CONJUR_SWARM_SOCKET is empty",
				`CONJUR_SWARM_LOG_LEVEL is "chatty"`,
				`CONJUR_SWARM_LOG_FORMAT is "xml"`,
				`CONJUR_SWARM_FETCH_TIMEOUT is "5x"`,
				"CONJUR_SWARM_CACHE_TTL is -1s",
				`CONJUR_SWARM_METRICS_LISTEN is "9090"`,
				`CONJUR_SWARM_ALLOW_HTTP is "maybe"`,
				"CONJUR_SWARM_SHUTDOWN_TIMEOUT is 0s",
				"CONJUR_CERT_FILE and CONJUR_SSL_CERTIFICATE are both set",
			},
		},
		{
			name: "fail/fetch timeout at Swarm's limit",
			env:  map[string]string{"CONJUR_SWARM_FETCH_TIMEOUT": "30s"},
			want: []string{"CONJUR_SWARM_FETCH_TIMEOUT is 30s"},
		},
		{
			name: "fail/per-request identity without an issuer",
			env:  map[string]string{"CONJUR_SWARM_IDENTITY": "per-request", "CONJUR_SWARM_IDENTITY_ISSUER": " "},
			want: []string{"CONJUR_SWARM_IDENTITY_ISSUER is not set"},
		},
		{
			name: "fail/identity mode and token lifetime out of range",
			env:  map[string]string{"CONJUR_SWARM_IDENTITY": "per-stack", "CONJUR_SWARM_IDENTITY_TOKEN_LIFETIME": "2h"},
			want: []string{`CONJUR_SWARM_IDENTITY is "per-stack"`, "CONJUR_SWARM_IDENTITY_TOKEN_LIFETIME is 2h0m0s"},
		},
		{
			name: "fail/fatal log level is not a level to run at",
			env:  map[string]string{"CONJUR_SWARM_LOG_LEVEL": "fatal"},
			want: []string{`CONJUR_SWARM_LOG_LEVEL is "fatal"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.env)
			if err == nil {
				t.Fatal("loadConfig: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if got, want := strings.Count(err.Error(), "\n")+1, len(tc.want); got != want {
				t.Errorf("error has %d lines, want %d:\n%v", got, want, err)
			}
		})
	}
}

// TestConjurConfigAWSOnlyForIAM: the AWS_* variables, which other tools on
// the host may set, reach the Conjur client only with CONJUR_AUTHN_TYPE=iam.
func TestConjurConfigAWSOnlyForIAM(t *testing.T) {
	env := map[string]string{"CONJUR_SERVICE_ID": "prod",
		"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "aws-secret", "AWS_SESSION_TOKEN": "aws-token"}
	for _, mode := range []string{"", "cert", "azure", "iam"} {
		env["CONJUR_AUTHN_TYPE"] = mode
		c, err := load(t, env)
		if err != nil {
			t.Fatal(err)
		}
		cc := c.conjurConfig(nil)
		got := cc.AWSAccessKeyID != "" || cc.AWSSecretAccessKey != "" || cc.AWSSessionToken != ""
		if got != (mode == "iam") {
			t.Errorf("CONJUR_AUTHN_TYPE=%q: the AWS credentials reached the client: %t", mode, got)
		}
	}
}

// TestIAMRegionOutsideIAMIsRefused: CONJUR_AUTHN_IAM_REGION is the
// plugin's own setting, so a region set in another mode is a mistake the
// client refuses, naming it (as CONJUR_AUTHN_AZURE_CLIENT_ID outside azure),
// not a setting silently ignored.
func TestIAMRegionOutsideIAMIsRefused(t *testing.T) {
	for _, mode := range []string{"", "cert", "azure"} {
		c, err := load(t, map[string]string{"CONJUR_AUTHN_TYPE": mode, "CONJUR_SERVICE_ID": "prod", "CONJUR_AUTHN_IAM_REGION": "eu-west-1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.conjurConfig(nil).Validate(); err == nil || !strings.Contains(err.Error(), "CONJUR_AUTHN_IAM_REGION") {
			t.Errorf("CONJUR_AUTHN_TYPE=%q with a region: %v, want a refusal naming CONJUR_AUTHN_IAM_REGION", mode, err)
		}
	}
}

func TestConfigRedactsCredentials(t *testing.T) {
	const key = "api-key-that-must-not-show"
	const pem = "-----BEGIN CERTIFICATE-----\nMIIBnotreally\n-----END CERTIFICATE-----\n"
	const awsSecret, awsToken = "aws-secret-that-must-not-show", "aws-token-that-must-not-show"
	c, err := load(t, map[string]string{"CONJUR_AUTHN_API_KEY": key, "CONJUR_SSL_CERTIFICATE": pem,
		"CONJUR_AUTHN_TYPE": "iam", "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": awsSecret, "AWS_SESSION_TOKEN": awsToken})
	if err != nil {
		t.Fatal(err)
	}
	if c.Conjur.APIKey != key {
		t.Fatalf("API key not loaded")
	}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, c.Conjur), fmt.Sprintf(verb, c.conjurConfig(nil)))
	}
	var buf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("settings", zap.Object("config", c), zap.Any("any", c), zap.Stringer("str", c))
	outputs = append(outputs, buf.String())
	for _, x := range []any{c, c.Conjur, &c} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(b))
	}
	for _, out := range outputs {
		if strings.Contains(out, key) || strings.Contains(out, "MIIBnotreally") || strings.Contains(out, awsSecret) || strings.Contains(out, awsToken) {
			t.Errorf("credential shown: %s", out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("no redaction marker in: %s", out)
		}
	}
}

func TestIdentitySigner(t *testing.T) {
	if s, err := (IdentitySettings{}).signer(); s != nil || err != nil {
		t.Fatalf("single-identity mode: signer %v, %v; want none", s, err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	on := IdentitySettings{Mode: identityPerRequest, Issuer: "https://swarm.example", TokenLifetime: 5 * time.Minute, StateDir: dir}
	s, err := on.signer()
	if err != nil || s == nil {
		t.Fatalf("per-request: signer %v, %v", s, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "signing-key.pem")); err != nil {
		t.Errorf("no key generated at first start: %v", err)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	on.StateDir = open
	if _, err := on.signer(); err == nil || !strings.Contains(err.Error(), "CONJUR_SWARM_IDENTITY_STATE_DIR") || !strings.Contains(err.Error(), "state.source=") {
		t.Fatalf("a world-writable state mount (the /tmp default): %v, want a refusal naming the mount to set", err)
	}
}
