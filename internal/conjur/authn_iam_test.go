package conjur

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// The AWS side of the authn-iam tests: the host is named after the role
// swarm-manager of account 123456789012; the dev server's stand-in for STS
// knows the credentials of that role (from the environment, and from the
// instance metadata service) and of another role.
const (
	iamLogin  = "host/aws/123456789012/swarm-manager"
	iamRole   = "swarm-manager"
	iamOther  = "other-role"
	iamPolicy = `- !host aws/123456789012/swarm-manager
- !webservice conjur/authn-iam/prod
- !permit
  role: !host aws/123456789012/swarm-manager
  privilege: authenticate
  resource: !webservice conjur/authn-iam/prod
- !grant
  role: !group apps/readers
  member: !host aws/123456789012/swarm-manager
`
)

var (
	// iamEnv are temporary credentials as AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN would give them.
	iamEnv = conjurdev.IAMIdentity{AccessKeyID: "ASIAENVEXAMPLE", SecretAccessKey: "env-secret-key", SessionToken: "env-session-token",
		ARN: "arn:aws:sts::123456789012:assumed-role/swarm-manager/ci-session"}
	// iamInstance are the instance role's, as IMDS hands them out.
	iamInstance = map[string]conjurdev.IAMIdentity{
		iamRole: {AccessKeyID: "ASIAIMDSEXAMPLE", SecretAccessKey: "imds-secret-key", SessionToken: "imds-session-token",
			ARN: "arn:aws:sts::123456789012:assumed-role/swarm-manager/i-0abc"},
		iamOther: {AccessKeyID: "ASIAOTHEREXAMPLE", SecretAccessKey: "other-secret-key", SessionToken: "other-session-token",
			ARN: "arn:aws:sts::123456789012:assumed-role/other-role/i-0abc"},
	}
	iamIdentities = []conjurdev.IAMIdentity{iamEnv, iamInstance[iamRole], iamInstance[iamOther]}
)

// fakeIMDS is EC2's instance metadata service as IMDSv2 answers: a session
// token for a PUT with a TTL header, then the role's name and credentials
// for GETs that carry it. role "" is an instance without a role; fail
// answers 500, hang never answers.
type fakeIMDS struct {
	role       atomic.Value // string
	fail, hang atomic.Bool
	tokens     atomic.Int64 // token PUTs answered
	fetches    atomic.Int64 // credential documents answered
	done       chan struct{}

	mu      sync.Mutex
	creds   map[string]conjurdev.IAMIdentity
	expires time.Time
}

const imdsSession = "fake-imds-session-token"

func newFakeIMDS(t *testing.T, role string) *fakeIMDS {
	f := &fakeIMDS{done: make(chan struct{}), creds: map[string]conjurdev.IAMIdentity{}, expires: time.Now().Add(6 * time.Hour)}
	for k, v := range iamInstance {
		f.creds[k] = v
	}
	f.role.Store(role)
	t.Cleanup(func() { close(f.done) })
	return f
}

// set makes role's credentials id, expiring at exp.
func (f *fakeIMDS) set(role string, id conjurdev.IAMIdentity, exp time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creds[role], f.expires = id, exp
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.hang.Load() {
		select {
		case <-r.Context().Done():
		case <-f.done:
		}
		return
	}
	if f.fail.Load() {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	const credPath = "/latest/meta-data/iam/security-credentials/"
	if r.URL.Path == "/latest/api/token" {
		ttl, err := strconv.Atoi(r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		if r.Method != http.MethodPut || err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		f.tokens.Add(1)
		_, _ = w.Write([]byte(imdsSession))
		return
	}
	if r.Method != http.MethodGet || r.Header.Get("X-Aws-Ec2-Metadata-Token") != imdsSession {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	role := f.role.Load().(string)
	switch r.URL.Path {
	case credPath:
		if role == "" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(role))
	case credPath + role:
		f.mu.Lock()
		id, exp := f.creds[role], f.expires
		f.mu.Unlock()
		f.fetches.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{"Code": "Success", "LastUpdated": time.Now().UTC().Format(time.RFC3339), "Type": "AWS-HMAC",
			"AccessKeyId": id.AccessKeyID, "SecretAccessKey": id.SecretAccessKey.Reveal(), "Token": id.SessionToken.Reveal(), "Expiration": exp.UTC().Format(time.RFC3339)})
	default:
		http.NotFound(w, r)
	}
}

// iamLoginCases: the plugin reads a secret as the instance role, and maps
// an instance without a role, an IMDS that never answers and a role that
// is not the host's to coded errors that quote no credential; a login
// after them recovers. Each case logs in with a client of its own.
func iamLoginCases(t *testing.T, cfg Config, imds *fakeIMDS) {
	t.Run("ok/reads-a-secret-as-the-instance-role", func(t *testing.T) {
		before := imds.tokens.Load()
		c := newClient(t, cfg)
		if v := mustGet(t, c, varID(1)); string(v.Data.Reveal()) != varValue(1) {
			t.Fatalf("got %q", v.Data.Reveal())
		}
		if st := c.Status(); st.CredentialSource != AuthnIAM || st.Login != iamLogin {
			t.Fatalf("status shows %q %q", st.CredentialSource, st.Login)
		}
		if imds.tokens.Load() == before {
			t.Fatal("no IMDSv2 session token was asked for")
		}
	})
	t.Run("no-credential/instance-without-a-role", func(t *testing.T) {
		imds.role.Store("")
		defer imds.role.Store(iamRole)
		_, err := newClient(t, cfg).Get(t.Context(), Ref{ID: varID(2)})
		checkIAMError(t, err, errcode.NoCredential, "names no IAM role", "instance profile", "AWS_ACCESS_KEY_ID")
	})
	t.Run("no-credential/imds-never-answers", func(t *testing.T) {
		imds.hang.Store(true)
		defer imds.hang.Store(false)
		_, err := newClient(t, cfg).Get(t.Context(), Ref{ID: varID(3)})
		checkIAMError(t, err, errcode.NoCredential, "gave no session token", "hop-limit")
	})
	t.Run("auth-refused/role-is-not-the-host", func(t *testing.T) {
		imds.role.Store(iamOther)
		defer imds.role.Store(iamRole)
		_, err := newClient(t, cfg).Get(t.Context(), Ref{ID: varID(4)})
		checkIAMError(t, err, errcode.AuthRefused, "authn-iam/prod", iamLogin, "the instance role "+iamOther)
	})
	t.Run("ok/next-login-recovers", func(t *testing.T) {
		if v := mustGet(t, newClient(t, cfg), varID(5)); string(v.Data.Reveal()) != varValue(5) {
			t.Fatalf("got %q", v.Data.Reveal())
		}
	})
}

// checkIAMError: err has code and says each of want, and quotes no
// secret access key or session token of the fixtures.
func checkIAMError(t *testing.T, err error, code errcode.Code, want ...string) {
	t.Helper()
	if CodeOf(err) != code {
		t.Fatalf("got %+v (%s), want %s", err, CodeOf(err), code)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q does not say %q", err, w)
		}
	}
	full := err.Error()
	if e := (*Error)(nil); errors.As(err, &e) && e.Cause != nil {
		full += " " + e.Cause.Error()
	}
	for _, id := range iamIdentities {
		for _, v := range []redact.String{id.SecretAccessKey, id.SessionToken} {
			if strings.Contains(full, v.Reveal()) {
				t.Fatalf("the error quotes a credential: %q", full)
			}
		}
	}
}

// TestIAMLogin: authn-iam against the dev server, whose stand-in for STS
// verifies the SigV4 signature and maps the role to the host as Conjur
// does: with the instance role's credentials from a fake IMDSv2 (its
// address given by MetadataURL), and with credentials from the
// environment, signed for the global STS endpoint or a regional one.
func TestIAMLogin(t *testing.T) {
	srv, _, _ := cloudServer(t)
	l := srv.listen(t, false)
	t.Run("imds", func(t *testing.T) {
		imds := newFakeIMDS(t, iamRole)
		md := httptest.NewServer(imds)
		t.Cleanup(md.Close)
		iamLoginCases(t, cloudConfig(l.URL, AuthnIAM, md.URL), imds)
	})
	env := func(region string) Config {
		cfg := cloudConfig(l.URL, AuthnIAM, deadURL(t)) // the metadata service is never asked
		cfg.AWSAccessKeyID, cfg.AWSSecretAccessKey, cfg.AWSSessionToken = redact.String(iamEnv.AccessKeyID), iamEnv.SecretAccessKey, iamEnv.SessionToken
		cfg.IAMRegion = region
		return cfg
	}
	for _, region := range []string{"", "eu-west-1"} {
		t.Run("ok/environment-credentials/region="+region, func(t *testing.T) {
			if v := mustGet(t, newClient(t, env(region)), varID(6)); string(v.Data.Reveal()) != varValue(6) {
				t.Fatalf("got %q", v.Data.Reveal())
			}
		})
	}
	t.Run("auth-refused/environment-secret-wrong", func(t *testing.T) {
		cfg := env("")
		cfg.AWSSecretAccessKey = "not-the-secret-key"
		_, err := newClient(t, cfg).Get(t.Context(), Ref{ID: varID(7)})
		checkIAMError(t, err, errcode.AuthRefused, "authn-iam/prod", "AWS_ACCESS_KEY_ID", "clock")
		if strings.Contains(err.Error(), "not-the-secret-key") {
			t.Fatalf("the error quotes the secret key: %v", err)
		}
	})
	t.Run("no-credential/imds-unreachable", func(t *testing.T) {
		_, err := newClient(t, cloudConfig(l.URL, AuthnIAM, deadURL(t))).Get(t.Context(), Ref{ID: varID(8)})
		checkIAMError(t, err, errcode.NoCredential, "gave no session token", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	})
}

// TestIAMCredentialsRefresh: the instance role's credentials are kept
// between logins and fetched again within 5 minutes of their Expiration;
// when that fetch fails, the ones in hand serve while they stay valid a
// minute more; expired ones from IMDS are refused.
func TestIAMCredentialsRefresh(t *testing.T) {
	imds := newFakeIMDS(t, iamRole)
	md := httptest.NewServer(imds)
	t.Cleanup(md.Close)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	cfg := cloudConfig("http://127.0.0.1:1", AuthnIAM, md.URL)
	cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	s := newClient(t, cfg).sess
	first, second := iamInstance[iamRole], iamInstance[iamRole]
	second.AccessKeyID = "ASIAROTATEDEXAMPLE"

	get := func(at time.Duration) (awsCredentials, error) {
		clock.Store(t0.Add(at).UnixNano())
		return s.iamCredentials(t.Context())
	}
	steps := []struct {
		name    string
		at      time.Duration
		serve   *conjurdev.IAMIdentity // nil: IMDS fails
		expires time.Duration
		wantKey string // "" = an error
		fetched int64
	}{
		{"ok/first-login-fetches", 0, &first, time.Hour, first.AccessKeyID, 1},
		{"ok/kept-between-logins", 50 * time.Minute, &second, 2 * time.Hour, first.AccessKeyID, 1},
		{"ok/fetched-again-before-expiration", 56 * time.Minute, &second, 2 * time.Hour, second.AccessKeyID, 2},
		{"ok/kept-when-the-refresh-fails", 2*time.Hour - 4*time.Minute, nil, 0, second.AccessKeyID, 2},
		{"no-credential/refresh-fails-at-expiration", 2*time.Hour - 30*time.Second, nil, 0, "", 2},
		{"no-credential/imds-answers-expired-credentials", 3 * time.Hour, &first, 2*time.Hour + 59*time.Minute, "", 3},
	}
	for _, st := range steps {
		imds.fail.Store(st.serve == nil)
		if st.serve != nil {
			imds.set(iamRole, *st.serve, t0.Add(st.expires))
		}
		c, err := get(st.at)
		switch {
		case st.wantKey == "" && CodeOf(err) != errcode.NoCredential:
			t.Fatalf("%s: got %v (%s), want NO_CREDENTIAL", st.name, err, CodeOf(err))
		case st.wantKey != "" && (err != nil || c.keyID.Reveal() != st.wantKey):
			t.Fatalf("%s: got key %q, %v; want %q", st.name, c.keyID.Reveal(), err, st.wantKey)
		case imds.fetches.Load() != st.fetched:
			t.Fatalf("%s: IMDS answered %d credential documents, want %d", st.name, imds.fetches.Load(), st.fetched)
		}
	}
}

// TestIAMConfigProblems: authn-iam's settings are checked with the rest.
func TestIAMConfigProblems(t *testing.T) {
	ok := Config{AuthnType: AuthnIAM, ServiceID: "prod", Login: iamLogin}
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"ok/instance-role", func(*Config) {}, ""},
		{"ok/environment-credentials-and-region", func(c *Config) {
			c.AWSAccessKeyID, c.AWSSecretAccessKey, c.AWSSessionToken, c.IAMRegion = "AKID", "s", "t", "us-gov-west-1"
		}, ""},
		{"refused/without-service-id", func(c *Config) { c.ServiceID = "" }, "the part after conjur/authn-iam/"},
		{"refused/login-without-account-and-role", func(c *Config) { c.Login = "host/aws/swarm-manager" }, "<AWS account id>/<IAM role name>"},
		{"refused/region-not-a-region", func(c *Config) { c.IAMRegion = "sts.amazonaws.com" }, "is not an AWS region"},
		{"refused/key-id-without-secret", func(c *Config) { c.AWSAccessKeyID = "AKID" }, "set both"},
		{"refused/session-token-alone", func(c *Config) { c.AWSSessionToken = "t" }, "AWS_SESSION_TOKEN is set without"},
		{"refused/aws-settings-in-another-mode", func(c *Config) { c.AuthnType, c.IAMRegion = AuthnGCP, "eu-west-1"; c.ServiceID = "" }, "CONJUR_AUTHN_TYPE is not iam"},
		{"refused/iam-and-an-api-key", func(c *Config) { c.APIKey = "k" }, "clear CONJUR_AUTHN_API_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			cfg.ApplianceURLs, cfg.Account = []string{"https://conjur.example.com"}, "dev"
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "AKID") {
				t.Fatalf("the error quotes a credential: %v", err)
			}
		})
	}
}

// imdsCredentialCases are IMDS credential documents and what
// parseIMDSCredentials makes of them (the fuzz target's seeds).
var imdsCredentialCases = []struct {
	name, body, wantErr string
}{
	{"ok/as-ec2-answers", `{"Code":"Success","LastUpdated":"2026-12-07T12:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAX","SecretAccessKey":"sk","Token":"tok","Expiration":"2026-12-07T18:00:00Z"}`, ""},
	{"ok/without-code", `{"AccessKeyId":"ASIAX","SecretAccessKey":"sk","Token":"tok","Expiration":"2026-12-07T18:00:00+01:00"}`, ""},
	{"fail/not-json", `ASIAX sk tok`, "not a JSON object"},
	{"fail/code-not-success", `{"Code":"AssumeRoleUnauthorizedAccess","AccessKeyId":"ASIAX","SecretAccessKey":"sk","Token":"tok","Expiration":"2026-12-07T18:00:00Z"}`, "not Success"},
	{"fail/no-secret", `{"AccessKeyId":"ASIAX","Token":"tok","Expiration":"2026-12-07T18:00:00Z"}`, "SecretAccessKey is missing"},
	{"fail/no-token", `{"AccessKeyId":"ASIAX","SecretAccessKey":"sk","Expiration":"2026-12-07T18:00:00Z"}`, "Token is missing"},
	{"fail/key-with-space", `{"AccessKeyId":"ASIA X","SecretAccessKey":"sk","Token":"tok","Expiration":"2026-12-07T18:00:00Z"}`, "AccessKeyId is missing or malformed"},
	{"fail/no-expiration", `{"AccessKeyId":"ASIAX","SecretAccessKey":"sk","Token":"tok"}`, "the Expiration field is missing"},
	{"fail/expiration-not-a-time", `{"AccessKeyId":"ASIAX","SecretAccessKey":"sk","Token":"tok","Expiration":"tomorrow"}`, "not an RFC 3339 time"},
}

func TestParseIMDSCredentials(t *testing.T) {
	for _, tt := range imdsCredentialCases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseIMDSCredentials([]byte(tt.body))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v", err)
			case tt.wantErr == "" && (c.keyID != "ASIAX" || c.secret != "sk" || c.token != "tok" || c.expires.IsZero()):
				t.Fatalf("got %+v", c)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzParseIMDSCredentials: any answer is parsed or refused without a
// panic; a refusal never quotes the secret key or token, and a parse has
// every part and an expiration.
func FuzzParseIMDSCredentials(f *testing.F) {
	for _, tt := range imdsCredentialCases {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseIMDSCredentials(body)
		if err == nil {
			if c.keyID == "" || c.secret == "" || c.token == "" || c.expires.IsZero() {
				t.Fatalf("accepted incomplete credentials from %q", body)
			}
			return
		}
		var d imdsCredentialDoc
		if json.Unmarshal(body, &d) == nil {
			for _, v := range []string{d.SecretAccessKey, d.Token} {
				if len(v) > 3 && strings.Contains(err.Error(), v) {
					t.Fatalf("the error %q quotes a credential of %q", err, body)
				}
			}
		}
	})
}

// TestIAMErrorsNeverEchoTheSignedHeaders: an appliance in front of Conjur
// that echoes parts of the authn-iam body in its error page (the session
// token, the signature) puts none of them in the error, the status or the
// log.
func TestIAMErrorsNeverEchoTheSignedHeaders(t *testing.T) {
	var echoed atomic.Value // the session token and the signature the echo sent back
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		_, sig, _ := strings.Cut(body["authorization"], "Signature=")
		echoed.Store([]string{body["x-amz-security-token"], sig})
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "rejected token %s with signature %s", body["x-amz-security-token"], sig)
	}))
	t.Cleanup(echo.Close)
	var buf strings.Builder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel))
	cfg := cloudConfig(echo.URL, AuthnIAM, deadURL(t))
	cfg.AWSAccessKeyID, cfg.AWSSecretAccessKey, cfg.AWSSessionToken = redact.String(iamEnv.AccessKeyID), iamEnv.SecretAccessKey, iamEnv.SessionToken
	c, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, getErr := c.Get(t.Context(), Ref{ID: varID(1)})
	checkIAMError(t, getErr, errcode.AuthRefused, "authn-iam/prod")
	st, err := json.Marshal(c.Status())
	if err != nil {
		t.Fatal(err)
	}
	sent, _ := echoed.Load().([]string)
	if len(sent) != 2 || sent[0] != iamEnv.SessionToken.Reveal() || len(sent[1]) != 64 {
		t.Fatalf("the echo saw %q, want the session token and a signature", sent)
	}
	full := fmt.Sprintf("%+v", getErr)
	if !strings.Contains(full, "rejected token [REDACTED]") {
		t.Errorf("the cause does not show the scrubbed echo: %s", full)
	}
	for _, text := range []string{full, string(st), buf.String()} {
		for _, v := range sent {
			if strings.Contains(text, v) {
				t.Errorf("%q shows: %s", v, text)
			}
		}
	}
}
