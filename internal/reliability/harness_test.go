package reliability

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/driver"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

const (
	pluginLogin = "host/swarm/conjur-plugin"
	pluginRole  = "host:swarm/conjur-plugin"
	// fetchTimeout is the plugin's CONJUR_SWARM_FETCH_TIMEOUT in these
	// tests: short, so that the slow-Conjur row is quick, and long enough
	// for a TLS handshake plus authentication under -race on a busy machine.
	fetchTimeout = 2 * time.Second
)

// conjurPolicy is the Conjur side of every test: the plugin's host, a group
// that may fetch apps/rel/*, one variable visible without execute (403), and
// one declared without a value (404).
const conjurPolicy = `
- !policy
  id: swarm
  body:
  - !host
    id: conjur-plugin

- !policy
  id: apps
  body:
  - !group secret-readers
  - &fetchable
    - !variable rel/db-password
    - !variable rel/api-token
    - !variable rel/tls-key
    - !variable rel/unset
  - !permit
    role: !group secret-readers
    privileges: [ read, execute ]
    resources: *fetchable
  - !variable rel/no-execute
  - !permit
    role: !group secret-readers
    privilege: read
    resource: !variable rel/no-execute

- !grant
  role: !group apps/secret-readers
  member: !host swarm/conjur-plugin
`

// grantExecute is the fix for the 403 row, loaded with PATCH on apps.
const grantExecute = `
- !permit
  role: !group secret-readers
  privilege: execute
  resource: !variable rel/no-execute
`

// newVariable is what the leader has and a lagging follower has not yet.
const newVariable = `
- !variable rel/new
- !permit
  role: !group secret-readers
  privileges: [ read, execute ]
  resource: !variable rel/new
`

// Variables that hold a value after newDev (tls-key is binary).
var seededVariables = []string{"apps/rel/db-password", "apps/rel/api-token", "apps/rel/tls-key", "apps/rel/no-execute"}

const mappingV1 = `version: 1
within: [apps/]
rules:
  - name: by-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
`

// mappingV2 adds a rule; a request only it matches tells which file is in force.
const mappingV2 = mappingV1 + `  - name: by-key
    match:
      secret_labels: {rel.key: "*"}
    variable: "apps/rel/{secret_label:rel.key}"
`

// mappingBroken is mappingV2 with an unknown placeholder and a misspelt key.
const mappingBroken = mappingV1 + `  - name: by-key
    match:
      secret_lables: {rel.key: "*"}
    variable: "apps/rel/{no_such_placeholder}"
`

// secretSet is every secret the tests seed (values, API keys, credentials
// handed over); the leak scan looks for each of them.
type secretSet struct {
	mu   sync.Mutex
	vals [][]byte
}

func (s *secretSet) add(v []byte) {
	s.mu.Lock()
	s.vals = append(s.vals, append([]byte(nil), v...))
	s.mu.Unlock()
}

// forms are the encodings in which a leaked secret could appear in text.
func (s *secretSet) forms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, v := range s.vals {
		for _, f := range []string{string(v), fmt.Sprintf("%q", v), base64.StdEncoding.EncodeToString(v),
			base64.RawURLEncoding.EncodeToString(v), hex.EncodeToString(v)} {
			// As written, and as a JSON log line escapes it (encoding/json
			// and zap's encoder differ on invalid UTF-8).
			q, _ := json.Marshal(f)
			for _, form := range []string{f, string(q[1 : len(q)-1]), zapEscaped(f)} {
				if len(form) >= 8 {
					out = append(out, form)
				}
			}
		}
	}
	return out
}

// zapEscaped is s as zap's JSON encoder writes a string field, without the quotes.
func zapEscaped(s string) string {
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{})
	buf, err := enc.EncodeEntry(zapcore.Entry{}, []zapcore.Field{zap.String("x", s)})
	if err != nil {
		return s
	}
	defer buf.Free()
	line := strings.TrimSpace(buf.String())
	line = strings.TrimPrefix(line, `{"x":"`)
	return strings.TrimSuffix(line, `"}`)
}

// find reports which secret forms appear in text (by index, never the form).
func (s *secretSet) find(text string) []int {
	var hits []int
	for i, f := range s.forms() {
		if strings.Contains(text, f) {
			hits = append(hits, i)
		}
	}
	return hits
}

// randomValue is a secret value unique to this run.
func randomValue(prefix string) []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return []byte(prefix + "-" + hex.EncodeToString(b))
}

func randomBinary() []byte {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[0], b[1] = 0x00, 0xff // not text
	return b
}

// devServer is one Conjur-compatible server with the test policy and values.
type devServer struct {
	dev    *conjurdev.Server
	apiKey string            // the plugin host's API key
	values map[string][]byte // variable id -> value
}

// newDev starts no listener; adminKey "" generates one.
func newDev(t testing.TB, adminKey string, secrets *secretSet, opts ...func(*conjurdev.Options)) *devServer {
	t.Helper()
	o := conjurdev.Options{AdminAPIKey: redact.String(adminKey)}
	for _, f := range opts {
		f(&o)
	}
	dev, err := conjurdev.New(o)
	if err != nil {
		t.Fatal(err)
	}
	secrets.add([]byte(dev.AdminAPIKey()))
	res, err := dev.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(conjurPolicy))
	if err != nil {
		t.Fatal(err)
	}
	key := res.CreatedRoles[dev.Account()+":"+pluginRole]
	if key == "" {
		t.Fatalf("the policy created no %s", pluginRole)
	}
	secrets.add([]byte(key))
	d := &devServer{dev: dev, apiKey: key.Reveal(), values: map[string][]byte{}}
	for _, id := range seededVariables {
		v := randomValue(id)
		if strings.HasSuffix(id, "tls-key") {
			v = randomBinary()
		}
		d.set(t, id, v, secrets)
	}
	return d
}

func (d *devServer) set(t testing.TB, id string, v []byte, secrets *secretSet) {
	t.Helper()
	if err := d.dev.SetSecret(id, v); err != nil {
		t.Fatal(err)
	}
	d.values[id] = v
	secrets.add(v)
}

// listen serves d over TLS on addr, retrying briefly when the port, just
// closed, is not free yet.
func (d *devServer) listen(t testing.TB, addr string) *conjurdev.Listener {
	t.Helper()
	var err error
	for range 50 {
		var l *conjurdev.Listener
		if l, err = d.dev.Listen(addr, true); err == nil {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// stackConfig tunes newStack.
type stackConfig struct {
	// urls gives the appliance URLs and the PEM of any CA they need besides
	// the stack's own (default: the stack's listener alone).
	urls     func(s *stack) ([]string, []byte)
	login    string                // CONJUR_AUTHN_LOGIN (default pluginLogin)
	handover func(s *stack) string // credential JSON handed over at start (default: the plugin host's key)
	adminKey string                // the dev server's admin key ("" generates one)
	logSink  zapcore.Core          // instead of an observer (the soak)
	now      func() time.Time      // the driver's and the Conjur client's clock (default time.Now)
	prefetch bool                  // CONJUR_SWARM_PREFETCH (on in the product, off here unless a row asks)
	cacheTTL time.Duration         // CONJUR_SWARM_CACHE_TTL (default off)
	// cloud shapes the stack as Conjur Cloud: the dev server under /api,
	// the client in the SaaS environment.
	cloud bool
	// jwtService enables authn-jwt/<jwtService> on the dev server and sets
	// CONJUR_AUTHN_JWT_SERVICE_ID (with login "", no identity is pinned).
	jwtService string
}

// stack is the product in one process, wired as cmd/conjur-swarm serve wires
// it: conjurdev over TLS, the real conjur.Client (credential handed over
// through the bootstrap endpoint, as the agent does), the real policy.Store
// watching a mapping file, the driver and its unix socket.
type stack struct {
	t testing.TB
	*devServer
	addr    string // host:port of the listener
	mu      sync.Mutex
	ln      *conjurdev.Listener
	secrets *secretSet
	logs    *observer.ObservedLogs // nil with a custom sink
	log     *zap.Logger
	mapping string
	store   *policy.Store
	client  *conjur.Client
	drv     *driver.Driver
	plugin  *pluginapi.Client
	taskSeq atomic.Int64

	errMu sync.Mutex
	errs  []string // every Err and bootstrap refusal seen
}

func newStack(t testing.TB, mods ...func(*stackConfig)) *stack {
	t.Helper()
	cfg := stackConfig{login: pluginLogin}
	for _, m := range mods {
		m(&cfg)
	}
	secrets := &secretSet{}
	s := &stack{t: t, secrets: secrets}
	var devOpts []func(*conjurdev.Options)
	env := ""
	if cfg.cloud {
		devOpts = append(devOpts, func(o *conjurdev.Options) { o.PathPrefix = "/api" })
		env = "saas"
	}
	if cfg.jwtService != "" {
		devOpts = append(devOpts, func(o *conjurdev.Options) {
			o.Authenticators = []string{"authn", "authn-jwt/" + cfg.jwtService}
		})
	}
	s.devServer = newDev(t, cfg.adminKey, secrets, devOpts...)
	s.ln = s.listen(t, "127.0.0.1:0")
	s.addr = strings.TrimSuffix(strings.TrimPrefix(s.ln.URL, "https://"), s.dev.PathPrefix())
	t.Cleanup(func() { _ = s.listener().Close() })

	var core zapcore.Core
	if cfg.logSink != nil {
		core = cfg.logSink
	} else {
		core, s.logs = observer.New(zapcore.DebugLevel)
	}
	s.log = zap.New(core)

	s.mapping = filepath.Join(t.TempDir(), "mapping.yml")
	s.writeMapping(mappingV1)
	store, err := policy.NewStore(s.mapping, s.log.Named("policy"))
	if err != nil {
		t.Fatal(err)
	}
	s.store = store
	ctx, stop := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = store.Run(ctx) }()
	t.Cleanup(func() { stop(); <-runDone })

	urls, caPEM := []string{s.ln.URL}, s.ln.CAPEM
	if cfg.urls != nil {
		var extra []byte
		urls, extra = cfg.urls(s)
		caPEM = append(append([]byte(nil), caPEM...), extra...)
	}
	client, err := conjur.New(conjur.Config{
		ApplianceURLs: urls,
		Account:       s.dev.Account(),
		Login:         cfg.login,
		JWTServiceID:  cfg.jwtService,
		CACertPEM:     caPEM,
		FetchTimeout:  fetchTimeout,
		Environment:   env,
		CacheTTL:      cfg.cacheTTL,
		Now:           cfg.now,
	}, s.log.Named("conjur"))
	if err != nil {
		t.Fatal(err)
	}
	s.client = client
	t.Cleanup(func() { _ = client.Close() })

	s.drv, err = driver.New(driver.Options{
		Resolver: store, PolicyStatus: store,
		Conjur:  client,
		Account: s.dev.Account(), ApplianceURLs: urls, Logger: s.log.Named("driver"), Now: cfg.now,
		Prefetch: cfg.prefetch,
	})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), pluginapi.SocketName)
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := driver.NewServer(s.drv, s.log.Named("server"))
	sctx, sstop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ul, 5*time.Second) }()
	t.Cleanup(func() {
		sstop()
		if err := <-served; err != nil {
			t.Errorf("plugin socket: %v", err)
		}
	})
	s.plugin = pluginapi.NewClient(sock, 20*time.Second)

	cred := s.handoff(pluginLogin, s.apiKey)
	if cfg.handover != nil {
		cred = cfg.handover(s)
	}
	ans, err := s.plugin.Bootstrap(context.Background(), []byte(cred))
	if err != nil || !ans.OK {
		t.Fatalf("the start-up handoff failed: %v %s", err, ans.Err)
	}
	return s
}

// handoff is the bootstrap document of login and key for this stack's
// Conjur (its account and its own listener's URL).
func (s *stack) handoff(login, key string) string {
	return fmt.Sprintf(`{"login":%q,"api_key":%q,"account":%q,"appliance_url":%q}`, login, key, s.dev.Account(), s.listener().URL)
}

func (s *stack) listener() *conjurdev.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln
}

// down closes the Conjur listener: connections are refused from now on.
func (s *stack) down() {
	s.t.Helper()
	if err := s.listener().Close(); err != nil {
		s.t.Fatal(err)
	}
}

// up serves the same server (same CA) on the same address again.
func (s *stack) up() {
	s.t.Helper()
	l := s.listen(s.t, s.addr)
	s.mu.Lock()
	s.ln = l
	s.mu.Unlock()
}

// replace serves another handler on the stack's address (after down).
func (s *stack) serveOther(other *devServer) *conjurdev.Listener {
	s.t.Helper()
	l := other.listen(s.t, s.addr)
	s.t.Cleanup(func() { _ = l.Close() })
	return l
}

func (s *stack) writeMapping(content string) {
	s.t.Helper()
	// Replace by rename, as an editor or a config management tool does.
	tmp := s.mapping + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.mapping); err != nil {
		s.t.Fatal(err)
	}
}

// request builds a GetSecret request with a unique task id, so that its
// audit line can be found.
func (s *stack) request(secret string, labels map[string]string) pluginapi.Request {
	n := s.taskSeq.Add(1)
	return pluginapi.Request{
		SecretName: secret, SecretLabels: labels,
		ServiceName: "web", ServiceID: "svc-web", TaskID: fmt.Sprintf("task-%d", n),
		NodeID: "node-1", TaskImage: "registry.example.com/web:1",
	}
}

// taskRequests returns a function that builds the requests of one task:
// every request it builds has the same task id, as swarmkit asks for a
// task's secrets one after another.
func (s *stack) taskRequests() func(secret string, labels map[string]string) pluginapi.Request {
	task := s.request("", nil).TaskID
	return func(secret string, labels map[string]string) pluginapi.Request {
		r := s.request(secret, labels)
		r.TaskID = task
		return r
	}
}

func (s *stack) byLabel(variable string) pluginapi.Request {
	return s.request("rel_"+filepath.Base(variable), map[string]string{"conjur.variable": variable})
}

func (s *stack) get(req pluginapi.Request) pluginapi.Response {
	s.t.Helper()
	res, err := s.plugin.GetSecret(context.Background(), req)
	if err != nil {
		s.t.Fatalf("GetSecret over the socket: %v", err)
	}
	if res.Err != "" {
		s.errMu.Lock()
		s.errs = append(s.errs, res.Err)
		s.errMu.Unlock()
	}
	return res
}

// auditLine returns the audit line of req: the last one of its task and
// secret (a task's Gets share its id).
func (s *stack) auditLine(req pluginapi.Request) (observer.LoggedEntry, bool) {
	lines := s.logs.FilterLoggerName("driver.audit").All()
	for i := len(lines) - 1; i >= 0; i-- {
		if m := lines[i].ContextMap(); m["task"] == req.TaskID && m["secret"] == req.SecretName {
			return lines[i], true
		}
	}
	return observer.LoggedEntry{}, false
}

// errCode extracts CODE from "conjur-swarm [CODE] ...".
func errCode(errText string) string {
	rest, ok := strings.CutPrefix(errText, "conjur-swarm [")
	if !ok {
		return ""
	}
	code, _, ok := strings.Cut(rest, "] ")
	if !ok {
		return ""
	}
	return code
}

// expectCode sends req and checks that Err and the audit line carry code,
// and that the audit line's err is the Err sent back. It returns the Err.
func (s *stack) expectCode(req pluginapi.Request, code string) string {
	s.t.Helper()
	res := s.get(req)
	if len(res.Value) != 0 {
		s.t.Fatalf("%s: got a value (%d bytes) with Err %q; want no value and [%s]", req.SecretName, len(res.Value), res.Err, code)
	}
	if got := errCode(res.Err); got != code {
		s.t.Fatalf("%s: Err %q has code %q, want %q", req.SecretName, res.Err, got, code)
	}
	if !strings.Contains(res.Err, fmt.Sprintf("secret %q", req.SecretName)) {
		s.t.Errorf("Err %q does not name the secret %q", res.Err, req.SecretName)
	}
	if s.logs == nil {
		return res.Err // the soak's sink counts audit lines itself
	}
	e, ok := s.auditLine(req)
	if !ok {
		s.t.Fatalf("no audit line for %s", req.TaskID)
	}
	m := e.ContextMap()
	if m["code"] != code || m["err"] != res.Err || m["secret"] != req.SecretName {
		s.t.Fatalf("audit line %v, want code %s and the Err sent back", m, code)
	}
	if e.Level < zapcore.WarnLevel {
		s.t.Errorf("audit line for a failure logged at %s", e.Level)
	}
	return res.Err
}

// expectValue sends req and checks that the exact value came back and the
// audit line says allow.
func (s *stack) expectValue(req pluginapi.Request, want []byte) {
	s.t.Helper()
	res := s.get(req)
	if res.Err != "" || string(res.Value) != string(want) {
		s.t.Fatalf("%s: Err %q, value ok=%v; want the exact value", req.SecretName, res.Err, string(res.Value) == string(want))
	}
	if s.logs == nil {
		return
	}
	e, ok := s.auditLine(req)
	if !ok {
		s.t.Fatalf("no audit line for %s", req.TaskID)
	}
	if m := e.ContextMap(); m["decision"] != "allow" || m["code"] != "" {
		s.t.Fatalf("audit line %v, want decision allow", m)
	}
}

// eventually polls cond (every 20 ms, up to limit); it is for state that
// changes in a background goroutine (the mapping file watcher), not for
// timing assertions.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scanForLeaks checks every log line (each field, encoded as the production
// JSON encoder does and as Go values), every Err seen and the status
// endpoint's answer for every seeded secret in every encoding.
func (s *stack) scanForLeaks() (lines int) {
	s.t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	var texts []string
	for _, e := range s.logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			s.t.Fatal(err)
		}
		texts = append(texts, buf.String())
		buf.Free()
		for k, v := range e.ContextMap() {
			texts = append(texts, k+"="+fmt.Sprint(v))
		}
	}
	lines = s.logs.Len()
	s.errMu.Lock()
	texts = append(texts, s.errs...)
	s.errMu.Unlock()
	if st, err := s.plugin.Status(context.Background()); err == nil {
		b, _ := json.Marshal(st)
		texts = append(texts, string(b))
	}
	for _, text := range texts {
		if hits := s.secrets.find(text); len(hits) > 0 {
			s.t.Errorf("a seeded secret (form #%v) appears in a log line, an Err or the status", hits)
		}
	}
	return lines
}

// checkNoLeftovers registers, first, the goroutine check that runs after
// every other cleanup of the test (cleanups run last-in first-out).
func checkNoLeftovers(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := goleak.Find(ignore); err != nil {
			t.Errorf("goroutines left behind: %v", err)
		}
	})
}
