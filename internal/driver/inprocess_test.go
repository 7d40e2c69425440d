package driver

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/bootstrap"
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

const (
	examples    = "../../docs/examples"
	pluginLogin = "host/swarm/conjur-plugin"
	pluginRole  = "host:swarm/conjur-plugin"
	hugeVar     = "apps/shop/api-token" // set to 500 KiB in this test
)

// logSink captures every log line of the product's components as JSON text
// (so that whatever a field holds is in the text) plus a line count.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}
func (s *logSink) Sync() error { return nil }
func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// stack is the product in one process: conjurdev over TLS, the real
// conjur.Client, the real policy.Store on docs/examples/mapping.yml, the
// driver, and the plugin socket.
type stack struct {
	dev    *conjurdev.Server
	url    string
	ca     []byte
	apiKey string
	logs   *logSink
	obs    *observer.ObservedLogs
	log    *zap.Logger
	store  *policy.Store
	ln     *conjurdev.Listener
}

func newStack(t *testing.T) *stack {
	t.Helper()
	dev, err := conjurdev.New(conjurdev.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := dev.LoadDemo(examples)
	if err != nil {
		t.Fatal(err)
	}
	key := res.CreatedRoles[dev.Account()+":"+pluginRole]
	if key == "" {
		t.Fatalf("demo policy created no %s: %v", pluginRole, res.CreatedRoles)
	}
	if err := dev.SetSecret(hugeVar, bytes.Repeat([]byte("h"), MaxValueBytes)); err != nil {
		t.Fatal(err)
	}
	l, err := dev.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	sink := &logSink{}
	obsCore, obs := observer.New(zap.DebugLevel)
	log := zap.New(zapcore.NewTee(
		zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), sink, zap.DebugLevel),
		obsCore,
	))
	store, err := policy.NewStore(filepath.Join(examples, "mapping.yml"), log.Named("policy"))
	if err != nil {
		t.Fatal(err)
	}
	return &stack{dev: dev, url: l.URL, ca: l.CAPEM, apiKey: key.Reveal(), logs: sink, obs: obs, log: log, store: store, ln: l}
}

// down closes the Conjur listener: connections are refused from now on.
func (s *stack) down(t *testing.T) {
	t.Helper()
	if err := s.ln.Close(); err != nil {
		t.Fatal(err)
	}
}

// handoff is the bootstrap document of login and key for this stack's Conjur.
func (s *stack) handoff(login, key string) string {
	return fmt.Sprintf(`{"login":%q,"api_key":%q,"account":%q,"appliance_url":%q}`, login, key, s.dev.Account(), s.url)
}

func (s *stack) conjurConfig() conjur.Config {
	return conjur.Config{
		ApplianceURLs: []string{s.url},
		Account:       s.dev.Account(),
		Login:         pluginLogin,
		CACertPEM:     s.ca,
		APIKey:        redact.String(s.apiKey),
		// A bound on a failure, not a measure: the TLS handshake, the
		// first load of the system CA pool and Adopt's authentication run
		// under it, and each took over a second on a loaded machine (the
		// TLS and handoff paths then answered TIMEOUT). The timeout path
		// sets its own.
		FetchTimeout: 25 * time.Second,
	}
}

// plugin starts a driver on a socket with a client built from cfg (nil cfg:
// no Conjur settings) and returns a socket client for it.
func (s *stack) plugin(t *testing.T, cfg *conjur.Config) *pluginapi.Client {
	t.Helper()
	opts := Options{Resolver: s.store, PolicyStatus: s.store, Account: s.dev.Account(), ApplianceURLs: []string{s.url}, Logger: s.log.Named("driver")}
	if cfg != nil {
		c, err := conjur.New(*cfg, s.log.Named("conjur"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		opts.Conjur = c
	} else {
		opts.ConfigProblem = "CONJUR_APPLIANCE_URL is not set"
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	_, sock := servePlugin(t, d)
	return pluginapi.NewClient(sock, 10*time.Second)
}

// byLabel is a request for a secret labelled conjur.variable=variable from a
// service of the stack that owns the variable (apps/<stack>/...), which the
// demo mapping's by-label rule requires.
func byLabel(name, variable string) pluginapi.Request {
	owner := ""
	if parts := strings.Split(variable, "/"); len(parts) > 2 {
		owner = parts[1]
	}
	return pluginapi.Request{SecretName: name, SecretLabels: map[string]string{"conjur.variable": variable},
		ServiceName: owner + "_web", ServiceLabels: map[string]string{"com.docker.stack.namespace": owner},
		ServiceID: "svc", TaskID: "task", NodeID: "node", TaskImage: "nginx:1"}
}

// TestInProcessEveryPath runs every outcome through the real components
// over the unix socket, then checks that no secret value and no API key
// appears in any log line (any field) or any Err.
func TestInProcessEveryPath(t *testing.T) {
	s := newStack(t)
	cfg := s.conjurConfig()
	main := s.plugin(t, &cfg)
	ctx := context.Background()
	var errs []string

	type tc struct {
		name     string
		client   func() *pluginapi.Client
		req      pluginapi.Request
		raw      string // a raw body instead of req
		before   func()
		after    func()
		want     string // value on allow
		wantCode string
	}
	stackReq := func(stack, key string, serviceStack string) pluginapi.Request {
		return pluginapi.Request{SecretName: stack + "_" + key, SecretLabels: map[string]string{"com.docker.stack.namespace": stack},
			ServiceName: serviceStack + "_web", ServiceLabels: map[string]string{"com.docker.stack.namespace": serviceStack}}
	}
	noCred := cfg
	noCred.APIKey = ""
	badCA := cfg
	badCA.CACertPEM = nil
	unconfigured := s.plugin(t, nil)
	noCredPlugin := s.plugin(t, &noCred)
	badCAPlugin := s.plugin(t, &badCA)
	timeoutCfg := cfg
	timeoutCfg.FetchTimeout = 200 * time.Millisecond
	timeoutPlugin := s.plugin(t, &timeoutCfg)

	cases := []tc{
		{name: "ok/by label", req: byLabel("db_password", "apps/demo/db-password"), want: "demo-db-password-0001"},
		{name: "ok/binary value", req: byLabel("tls_key", "apps/demo/tls-key"), want: "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\xff"},
		{name: "ok/stack secret", req: stackReq("shop", "db-password", "shop"), want: "shop-db-password-0001"},
		{name: "fail/deny no rule", req: pluginapi.Request{SecretName: "plain"}, wantCode: "DENIED"},
		{name: "fail/deny outside within", req: byLabel("x", "restricted/admin-password"), wantCode: "DENIED"},
		{name: "fail/deny dot-dot", req: byLabel("x", "apps/../restricted/admin-password"), wantCode: "DENIED"},
		{name: "fail/deny other stack's service", req: stackReq("shop", "db-password", "demo"), wantCode: "DENIED"},
		{name: "fail/deny a label naming another stack's variable", req: func() pluginapi.Request {
			r := byLabel("demo_x", "apps/shop/db-password")
			r.ServiceLabels = map[string]string{"com.docker.stack.namespace": "demo"}
			return r
		}(), wantCode: "DENIED"},
		{name: "fail/forbidden", req: byLabel("x", "apps/demo/read-only"), wantCode: "FORBIDDEN"},
		{name: "fail/not found", req: byLabel("x", "apps/demo/missing"), wantCode: "NOT_FOUND"},
		{name: "fail/value too large", req: byLabel("x", hugeVar), wantCode: "VALUE_UNUSABLE"},
		{
			name: "fail/unavailable", req: byLabel("db_password", "apps/demo/db-password"), wantCode: "UNAVAILABLE",
			before: func() { s.dev.Faults().SetStatus(503, 1) }, after: s.dev.Faults().Reset,
		},
		{
			name: "fail/timeout", client: func() *pluginapi.Client { return timeoutPlugin }, req: byLabel("db_password", "apps/demo/db-password"), wantCode: "TIMEOUT",
			before: func() { s.dev.Faults().SetLatency(time.Second) }, after: s.dev.Faults().Reset,
		},
		{name: "fail/no credential", client: func() *pluginapi.Client { return noCredPlugin }, req: byLabel("db_password", "apps/demo/db-password"), wantCode: "NO_CREDENTIAL"},
		{name: "fail/tls", client: func() *pluginapi.Client { return badCAPlugin }, req: byLabel("db_password", "apps/demo/db-password"), wantCode: "TLS"},
		{name: "fail/not configured", client: func() *pluginapi.Client { return unconfigured }, req: byLabel("db_password", "apps/demo/db-password"), wantCode: "NOT_CONFIGURED"},
		{name: "fail/bad request body", raw: `{"SecretName": ["db_password"]}`, wantCode: "BAD_REQUEST"},
		{name: "fail/bad request control character", raw: `{"SecretName":"a\u0007"}`, wantCode: "BAD_REQUEST"},
		{
			// Last: it rotates the plugin's key.
			name: "fail/auth refused", req: byLabel("db_password", "apps/demo/db-password"), wantCode: "AUTH_REFUSED",
			before: func() {
				if _, err := s.dev.RotateAPIKey(pluginRole); err != nil {
					t.Fatal(err)
				}
				s.dev.ExpireTokens()
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client := main
			if c.client != nil {
				client = c.client()
			}
			if c.before != nil {
				c.before()
			}
			if c.after != nil {
				defer c.after()
			}
			var res pluginapi.Response
			var err error
			if c.raw != "" {
				_, body := rawPost(t, client.Socket(), pluginapi.PathGetSecret, c.raw)
				res.Err = body
			} else {
				res, err = client.GetSecret(ctx, c.req)
			}
			if err != nil {
				t.Fatalf("GetSecret: %v", err)
			}
			errs = append(errs, res.Err)
			if c.wantCode == "" {
				if res.Err != "" || string(res.Value) != c.want {
					t.Fatalf("got %v, want the value", res)
				}
				return
			}
			if !strings.Contains(res.Err, "conjur-swarm ["+c.wantCode+"] ") {
				t.Fatalf("Err %q, want code %s", res.Err, c.wantCode)
			}
		})
	}

	values, err := conjurdev.ParseValues(mustRead(t, filepath.Join(examples, "values.yml")))
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{[]byte(s.apiKey), bytes.Repeat([]byte("h"), 64)}
	for _, v := range values {
		secrets = append(secrets, v)
	}
	// Every field of every entry, as the observer saw it, plus the JSON text.
	var fieldText strings.Builder
	for _, e := range s.obs.All() {
		fieldText.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&fieldText, " %s=%v", k, v)
		}
		fieldText.WriteByte('\n')
	}
	if n := s.obs.FilterLoggerName("driver.audit").Len(); n != len(cases) {
		t.Errorf("%d audit lines for %d requests, want one each", n, len(cases))
	}
	logText := s.logs.String() + fieldText.String()
	if !strings.Contains(logText, `"code":"AUTH_REFUSED"`) || !strings.Contains(logText, `"decision":"allow"`) {
		t.Fatalf("the log does not hold the audit lines; the leak check would prove nothing:\n%s", logText)
	}
	for _, v := range secrets {
		forms := []string{string(v), base64.StdEncoding.EncodeToString(v)}
		for _, f := range forms {
			if len(f) < 8 {
				continue
			}
			if strings.Contains(logText, f) {
				t.Errorf("a secret (%d bytes) appears in the log", len(v))
			}
			for _, e := range errs {
				if strings.Contains(e, f) {
					t.Errorf("a secret (%d bytes) appears in an Err: %s", len(v), e)
				}
			}
		}
	}
}

// TestInProcessBootstrap: the handoff over the socket with the real Conjur
// client: refused for another login and for a wrong key, accepted for the
// pinned login, after which GetSecret works. The key never reaches the log.
func TestInProcessBootstrap(t *testing.T) {
	s := newStack(t)
	cfg := s.conjurConfig()
	cfg.APIKey = ""
	c := s.plugin(t, &cfg)
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil || st.Conjur.HasCredential() {
		t.Fatalf("status before the handoff: %+v %v", st.Conjur, err)
	}
	for _, tc := range []struct {
		name, cred, wantCode string
	}{
		{"fail/not JSON", `api-key-as-text`, "CREDENTIAL_REJECTED"},
		{"fail/another login", s.handoff("host/other", s.apiKey), "CREDENTIAL_REJECTED"},
		{"fail/wrong key", s.handoff(pluginLogin, "wrong-key-0000"), "AUTH_REFUSED"},
	} {
		ans, err := c.Bootstrap(ctx, []byte(tc.cred))
		if err != nil || ans.OK || !strings.Contains(ans.Err, "["+tc.wantCode+"]") {
			t.Errorf("%s: answer %+v, err %v; want %s", tc.name, ans, err, tc.wantCode)
		}
	}
	res, _ := c.GetSecret(ctx, byLabel("db_password", "apps/demo/db-password"))
	if !strings.Contains(res.Err, "[NO_CREDENTIAL]") {
		t.Fatalf("before the handoff: %v", res)
	}

	good := credential.Credential{Login: pluginLogin, APIKey: redact.String(s.apiKey)}
	ans, err := c.Bootstrap(ctx, []byte(s.handoff(pluginLogin, s.apiKey)))
	if err != nil || !ans.OK || ans.Fingerprint != good.Fingerprint() {
		t.Fatalf("handoff: %+v %v", ans, err)
	}
	res, err = c.GetSecret(ctx, byLabel("db_password", "apps/demo/db-password"))
	if err != nil || string(res.Value) != "demo-db-password-0001" {
		t.Fatalf("after the handoff: %v %v", res, err)
	}
	st, err = c.Status(ctx)
	if err != nil || st.Conjur.CredentialSource != "handoff" || st.Conjur.CredentialFingerprint != good.Fingerprint() {
		t.Fatalf("status after the handoff: %+v %v", st.Conjur, err)
	}
	logText := s.logs.String()
	if !strings.Contains(logText, "credential handoff accepted") || !strings.Contains(logText, good.Fingerprint()) {
		t.Errorf("no handoff log line with the fingerprint:\n%s", logText)
	}
	if strings.Contains(logText, s.apiKey) {
		t.Error("the API key appears in the log")
	}
}

// TestAgentHandsOver: the bootstrap agent finds the socket under a plugins
// directory laid out like /run/docker/plugins/<id>/conjur.sock, hands the
// credential over once, and does nothing on the next pass.
func TestAgentHandsOver(t *testing.T) {
	s := newStack(t)
	cfg := s.conjurConfig()
	cfg.APIKey = ""
	c, err := conjur.New(cfg, s.log.Named("conjur"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := New(Options{Resolver: s.store, Conjur: c, Account: s.dev.Account(), ApplianceURLs: []string{s.url}, Logger: s.log.Named("driver")})
	if err != nil {
		t.Fatal(err)
	}
	plugins := t.TempDir()
	sock := filepath.Join(plugins, "0123abcd", pluginapi.SocketName)
	serveDriverAt(t, d, sock)

	secretFile := filepath.Join(t.TempDir(), "conjur-bootstrap")
	writeFile(t, secretFile, s.handoff(pluginLogin, s.apiKey))
	agent, err := bootstrap.New(bootstrap.Options{SecretFile: secretFile, PluginsDir: plugins, Logger: s.log.Named("agent")})
	if err != nil {
		t.Fatal(err)
	}
	first := agent.Pass(context.Background())
	if len(first.HandedTo) != 1 || first.HandedTo[0] != sock || len(first.Failed) != 0 {
		t.Fatalf("first pass %+v", first)
	}
	second := agent.Pass(context.Background())
	if len(second.HandedTo) != 0 || len(second.Current) != 1 {
		t.Fatalf("second pass %+v, want the plugin already current", second)
	}
	res, err := pluginapi.NewClient(sock, 5*time.Second).GetSecret(context.Background(), byLabel("db_password", "apps/demo/db-password"))
	if err != nil || string(res.Value) != "demo-db-password-0001" {
		t.Fatalf("after the agent: %v %v", res, err)
	}

	// A rotated key in the swarm secret is handed over again.
	newKey, err := s.dev.RotateAPIKey(pluginRole)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, secretFile, s.handoff(pluginLogin, newKey))
	third := agent.Pass(context.Background())
	if len(third.HandedTo) != 1 {
		t.Fatalf("after rotation %+v, want a new handoff", third)
	}
	if logText := s.logs.String(); strings.Contains(logText, s.apiKey) || strings.Contains(logText, newKey) {
		t.Error("an API key appears in the log")
	}
}
