package conjur

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

func validConfig() Config {
	return Config{
		ApplianceURLs: []string{"https://conjur.example.com"},
		Account:       "myorg",
		Login:         "host/swarm/conjur-plugin",
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		wants []string // substrings, one per expected problem; nil = valid
	}{
		{name: "ok/minimal", edit: func(*Config) {}},
		{name: "ok/several urls and jwt", edit: func(c *Config) {
			c.ApplianceURLs = []string{"https://a.example.com", "https://b.example.com:8443/api"}
			c.Login = ""
			c.JWTServiceID, c.JWTTokenPath = "swarm", "/run/jwt"
		}},
		{name: "ok/http allowed for dev", edit: func(c *Config) {
			c.ApplianceURLs, c.AllowHTTP = []string{"http://127.0.0.1:8080"}, true
		}},
		{name: "fail/nothing set", edit: func(c *Config) { *c = Config{} },
			wants: []string{"CONJUR_APPLIANCE_URL is not set", "CONJUR_ACCOUNT is not set", "CONJUR_AUTHN_LOGIN is not set"}},
		{name: "fail/plain http without AllowHTTP", edit: func(c *Config) { c.ApplianceURLs = []string{"http://conjur"} },
			wants: []string{"uses plain http"}},
		{name: "fail/bad urls each reported", edit: func(c *Config) {
			c.ApplianceURLs = []string{"ftp://x", "conjur.example.com", "https://u:p@x", "https://a", "https://a/"}
		}, wants: []string{`scheme "ftp"`, `"conjur.example.com" is not an absolute URL`, "carries credentials", "twice"}},
		{name: "fail/account with colon", edit: func(c *Config) { c.Account = "a:b" }, wants: []string{"CONJUR_ACCOUNT"}},
		{name: "fail/two credential sources", edit: func(c *Config) { c.APIKey, c.CredentialFile = "k", "/f" },
			wants: []string{"more than one of"}},
		{name: "fail/api key without login", edit: func(c *Config) { c.Login, c.APIKey, c.JWTServiceID = "", "k", "svc" },
			wants: []string{"CONJUR_AUTHN_API_KEY is set without CONJUR_AUTHN_LOGIN"}},
		{name: "fail/jwt path without service", edit: func(c *Config) { c.JWTTokenPath = "/jwt" },
			wants: []string{"JWT_TOKEN_PATH is set without"}},
		{name: "fail/bad CA", edit: func(c *Config) { c.CACertPEM = []byte("not pem") }, wants: []string{"holds no PEM certificate"}},
		{name: "fail/timeouts and sizes", edit: func(c *Config) {
			c.FetchTimeout, c.MaxInFlight, c.MaxBatch, c.CacheTTL = 30*time.Second, -1, 5000, time.Hour
		}, wants: []string{"CONJUR_SWARM_FETCH_TIMEOUT", "CONJUR_SWARM_MAX_IN_FLIGHT", "max batch", "CONJUR_SWARM_CACHE_TTL"}},
		{name: "fail/negative timeout", edit: func(c *Config) { c.FetchTimeout = -time.Second }, wants: []string{"CONJUR_SWARM_FETCH_TIMEOUT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.wants == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %d problems", len(tt.wants))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wants) {
				t.Errorf("got %d problems, want %d:\n%v", len(lines), len(tt.wants), err)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestConfigRedacts(t *testing.T) {
	cfg := validConfig()
	cfg.APIKey = "sekrit-api-key"
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg, cfg)} {
		if strings.Contains(s, "sekrit") {
			t.Fatalf("config printed its API key: %s", s)
		}
	}
}

// JSON and zap.Any must not write the API key or the value either: both
// would otherwise encode every exported field.
func TestConfigAndValueRedactInJSONAndZap(t *testing.T) {
	cfg := validConfig()
	cfg.APIKey = "sekrit-api-key"
	v := Value{Data: []byte("sekrit-value"), URL: "https://c"}
	var buf strings.Builder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel))
	log.Info("x", zap.Any("cfg", cfg), zap.Any("v", v), zap.Any("ptr", &cfg), zap.Reflect("r", cfg))
	outs := []string{buf.String()}
	for _, x := range []any{cfg, v, &cfg, &v, struct{ C Config }{cfg}, []Value{v}} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	for _, s := range outs {
		for _, secret := range []string{"sekrit", base64.StdEncoding.EncodeToString([]byte("sekrit-value"))[:8]} {
			if strings.Contains(s, secret) {
				t.Fatalf("encoding shows a secret: %s", s)
			}
		}
	}
}

func TestValueRedacts(t *testing.T) {
	v := Value{Data: []byte("sekrit-value"), URL: "https://c"}
	core, logs := observer.New(zapcore.DebugLevel)
	zap.New(core).Info("x", zap.Object("v", v), zap.Any("a", v))
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s %q %x %X", v, v, v, v, v, v, v), fmt.Sprint(logs.All()[0].ContextMap())} {
		if strings.Contains(s, "sekrit") || strings.Contains(s, fmt.Sprintf("%x", "sekrit")) {
			t.Fatalf("value printed its data: %s", s)
		}
	}
}

func TestCodeOf(t *testing.T) {
	e := &Error{Code: errcode.Forbidden, Msg: "m", Cause: errors.New("403")}
	tests := []struct {
		name string
		err  error
		want errcode.Code
	}{
		{"ok/nil", nil, ""},
		{"ok/direct", e, errcode.Forbidden},
		{"ok/wrapped", fmt.Errorf("driver: %w", e), errcode.Forbidden},
		{"ok/other", errors.New("x"), errcode.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeOf(tt.err); got != tt.want {
				t.Fatalf("CodeOf = %q, want %q", got, tt.want)
			}
		})
	}
	if e.Error() != "m" || !errors.Is(e, e.Cause) {
		t.Errorf("Error()/Unwrap wrong: %q", e.Error())
	}
	if got := fmt.Sprintf("%+v", e); got != "[FORBIDDEN] m (cause: 403)" {
		t.Errorf("%%+v = %q", got)
	}
}

func tokenJSON(payload string) []byte {
	b, _ := json.Marshal(map[string]string{
		"protected": base64.StdEncoding.EncodeToString([]byte(`{"alg":"conjur.org/slosilo/v2"}`)),
		"payload":   base64.StdEncoding.EncodeToString([]byte(payload)),
		"signature": "c2ln",
	})
	return b
}

func TestParseAccessToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name     string
		raw      []byte
		wantLife time.Duration
		wantErr  bool
	}{
		{name: "ok/exp and iat", raw: tokenJSON(`{"sub":"host/a","iat":1000,"exp":1480}`), wantLife: 8 * time.Minute},
		{name: "ok/no exp means 8 minutes", raw: tokenJSON(`{"sub":"host/a","iat":1000}`), wantLife: 8 * time.Minute},
		{name: "ok/short", raw: tokenJSON(`{"iat":1000,"exp":1002}`), wantLife: 2 * time.Second},
		{name: "fail/not json", raw: []byte("nope"), wantErr: true},
		{name: "fail/missing fields", raw: []byte(`{"payload":"e30="}`), wantErr: true},
		{name: "fail/no iat", raw: tokenJSON(`{"exp":5}`), wantErr: true},
		{name: "fail/exp before iat", raw: tokenJSON(`{"iat":10,"exp":5}`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := parseAccessToken(tt.raw, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %t", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := struct{ Life, Refresh, Stale time.Duration }{tok.expiresAt.Sub(now), tok.refreshAt.Sub(now), tok.staleAt.Sub(now)}
			want := struct{ Life, Refresh, Stale time.Duration }{tt.wantLife, tt.wantLife * 80 / 100, tt.wantLife * 95 / 100}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("times (-want +got):\n%s", d)
			}
		})
	}
}

func FuzzParseAccessToken(f *testing.F) {
	f.Add(tokenJSON(`{"iat":1000,"exp":1480}`))
	f.Add(tokenJSON(`{"iat":1000}`))
	f.Add([]byte(`{"protected":"","payload":"","signature":""}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		now := time.Unix(1_700_000_000, 0)
		tok, err := parseAccessToken(raw, now)
		if err != nil {
			return
		}
		if !tok.expiresAt.After(now) || tok.refreshAt.After(tok.staleAt) || tok.staleAt.After(tok.expiresAt) {
			t.Fatalf("inconsistent times %+v", tok)
		}
	})
}

func TestNewDoesNoIOAndFailsWithoutCredential(t *testing.T) {
	cfg := validConfig()
	cfg.ApplianceURLs = []string{"https://127.0.0.1:1"} // nothing listens; New must not care
	c, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Get(t.Context(), Ref{ID: "apps/x"})
	if CodeOf(err) != errcode.NoCredential {
		t.Fatalf("Get without credential: %v (code %s), want NO_CREDENTIAL", err, CodeOf(err))
	}
	// NO_CREDENTIAL shows as credential source "none", not as a Conjur
	// error: the last error is kept for what Conjur's side gave.
	if st := c.Status(); st.CredentialSource != "none" || st.LastErrorCode != "" || !st.LastContact.IsZero() {
		t.Fatalf("status = %+v", st)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New accepted an empty config")
	}
}

func TestGetRejectsBadRefs(t *testing.T) {
	c, err := New(validConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, ref := range []Ref{{}, {ID: "/abs"}, {ID: "a\nb"}, {ID: "a", Version: -1}, {ID: strings.Repeat("a", 2000)}} {
		if _, err := c.Get(t.Context(), ref); CodeOf(err) != errcode.BadRequest {
			t.Errorf("Get(%q) = %v, want BAD_REQUEST", ref.ID, err)
		}
	}
}

func TestGetAfterCloseIsUnavailable(t *testing.T) {
	cfg := validConfig()
	cfg.APIKey = "k"
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close()
	if _, err := c.Get(t.Context(), Ref{ID: "a"}); CodeOf(err) != errcode.Unavailable {
		t.Fatalf("Get after Close = %v, want UNAVAILABLE", err)
	}
}
