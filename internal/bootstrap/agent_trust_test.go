package bootstrap

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur/conjurtest"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/pluginapi/pluginapitest"
)

// The attacks of issue 11 item 1, each over real unix sockets under a
// plugins directory laid out like /run/docker/plugins/<id>/conjur.sock.

const (
	prodLogin   = "host/swarm/conjur-plugin"
	prodAccount = "prod"
	prodURL     = "https://conjur.prod.example"
	prodKey     = "key-prod-7777"
)

// prodCred is the bootstrap secret of the production swarm.
var prodCred = `{"login":"` + prodLogin + `","api_key":"` + prodKey + `","account":"` + prodAccount + `","appliance_url":"` + prodURL + `"}`

// serveFakeSocket is a socket that answers /ConjurSwarm.Status with status
// and /ConjurSwarm.Bootstrap with bootstrapAnswer, recording every bootstrap
// body, which is what an impersonating socket would steal.
func serveFakeSocket(t *testing.T, sock, status, bootstrapAnswer string) *pluginapitest.Socket {
	t.Helper()
	return pluginapitest.Serve(t, sock, pluginapitest.Options{Status: status, Bootstrap: bootstrapAnswer})
}

func newTrustAgent(t *testing.T, plugins, cred string) (*Agent, *observer.ObservedLogs) {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "conjur-bootstrap")
	writeFile(t, secret, cred)
	core, logs := observer.New(zap.DebugLevel)
	a, err := New(Options{SecretFile: secret, PluginsDir: plugins, CallTimeout: 5 * time.Second, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	return a, logs
}

func assertNoKeyLogged(t *testing.T, logs *observer.ObservedLogs, key string) {
	t.Helper()
	for _, e := range logs.All() {
		if strings.Contains(e.Message, key) {
			t.Errorf("the key appears in a log message: %q", e.Message)
		}
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, key) {
				t.Errorf("the key appears in the agent's log: %v", e.ContextMap())
			}
		}
	}
}

// A second, legitimate conjur-swarm plugin on the same node, pinned to the
// same conventional login but configured for a staging Conjur (another
// account and URL), must not receive the production key.
func TestAgentKeepsTheKeyFromAPluginOfAnotherConjur(t *testing.T) {
	plugins := t.TempDir()
	prodSock := filepath.Join(plugins, "bbbb", pluginapi.SocketName)
	stagingSock := filepath.Join(plugins, "aaaa", pluginapi.SocketName) // sorted first
	prod := realPlugin(t, prodSock, prodLogin, prodAccount, prodURL)
	staging := realPlugin(t, stagingSock, prodLogin, "staging", "https://conjur.staging.example")
	a, logs := newTrustAgent(t, plugins, prodCred)

	for range 2 { // the second pass is the one that used to re-send it on the back-off
		a.Pass(context.Background())
	}
	if n := len(staging.Adopted()); n != 0 {
		t.Errorf("the staging plugin received the production credential %d times; want never", n)
	}
	if n := len(prod.Adopted()); n != 1 {
		t.Errorf("the production plugin adopted the credential %d times; want once", n)
	}
	res := a.Pass(context.Background())
	if _, ok := res.Failed[stagingSock]; ok {
		t.Errorf("a plugin of another Conjur counts as a failure (it would fail --once): %+v", res)
	}
	assertNoKeyLogged(t, logs, prodKey)
}

// A socket that reports a status with no login, account or URL (here: no
// credential source at all) gets nothing.
func TestAgentKeepsTheKeyFromASocketThatReportsNoIdentity(t *testing.T) {
	plugins := t.TempDir()
	fake := serveFakeSocket(t, filepath.Join(plugins, "aaaa", pluginapi.SocketName),
		`{"configured":true,"conjur":{"credential_source":"none"}}`, `{"ok":true,"fingerprint":"0000000000000000"}`)
	a, logs := newTrustAgent(t, plugins, prodCred)

	res := a.Pass(context.Background())
	if got := fake.Handoffs(); len(got) != 0 {
		t.Errorf("the fake socket received the credential: %d bodies", len(got))
	}
	if len(res.HandedTo) != 0 {
		t.Errorf("handed to %v; want nobody", res.HandedTo)
	}
	if n := logs.FilterMessageSnippet("credential handed over").Len(); n != 0 {
		t.Errorf("%d success lines for a socket that reports no identity", n)
	}
	assertNoKeyLogged(t, logs, prodKey)
}

// Statuses that lack the conjur object, or answer garbage, neither crash the
// agent nor stop the handover to the next socket (sockets are tried in
// sorted order: these sort first).
func TestAgentSurvivesHostileStatusesAndServesTheOthers(t *testing.T) {
	plugins := t.TempDir()
	hostile := map[string]string{
		"a1": `{"configured":true}`,
		"a2": `{"configured":true,"conjur":null}`,
		"a3": `not json`,
		"a4": `{"configured":true,"conjur":{"login":"` + prodLogin + `","credential_source":"handoff","urls":[null]}}`,
		"a5": `{"configured":true,"conjur":{"login":7}}`,
	}
	var fakes []*pluginapitest.Socket
	for dir, status := range hostile {
		fakes = append(fakes, serveFakeSocket(t, filepath.Join(plugins, dir, pluginapi.SocketName), status, `{"ok":true}`))
	}
	prodSock := filepath.Join(plugins, "zz", pluginapi.SocketName)
	prod := realPlugin(t, prodSock, prodLogin, prodAccount, prodURL)
	a, _ := newTrustAgent(t, plugins, prodCred)

	res := a.Pass(context.Background())
	if len(res.HandedTo) != 1 || res.HandedTo[0] != prodSock || len(prod.Adopted()) != 1 {
		t.Fatalf("pass %+v: want the credential handed to %s only", res, prodSock)
	}
	for _, f := range fakes {
		if got := f.Handoffs(); len(got) != 0 {
			t.Errorf("a hostile socket received the credential")
		}
	}
}

// A socket that reports the right identity and then answers "ok" with a
// fingerprint other than the one sent did not adopt this credential: the
// agent must not log a successful handover.
func TestAgentLogsSuccessOnlyForTheFingerprintSent(t *testing.T) {
	plugins := t.TempDir()
	sock := filepath.Join(plugins, "aaaa", pluginapi.SocketName)
	status := `{"configured":true,"conjur":{"login":"` + prodLogin + `","account":"` + prodAccount +
		`","credential_source":"none","urls":[{"url":"` + prodURL + `","healthy":true}]}}`
	serveFakeSocket(t, sock, status, `{"ok":true,"fingerprint":"feedfeedfeedfeed"}`)
	a, logs := newTrustAgent(t, plugins, prodCred)

	res := a.Pass(context.Background())
	if len(res.HandedTo) != 0 {
		t.Errorf("handed to %v; the plugin answered another fingerprint", res.HandedTo)
	}
	if why := res.Failed[sock]; !strings.Contains(why, "feedfeedfeedfeed") {
		t.Errorf("failure %q does not name the fingerprint the plugin answered", why)
	}
	if n := logs.FilterMessageSnippet("credential handed over").Len(); n != 0 {
		t.Errorf("%d success lines for an answer with another fingerprint", n)
	}
	if n := logs.FilterMessageSnippet("plugin refused the credential").Len(); n != 1 {
		t.Errorf("%d refusal lines, want 1", n)
	}
}

// A socket that accepts the status call and never answers (a hung plugin,
// or one that wants to stall the agent) sorts first; the production plugin
// behind it still gets the credential while that call hangs. The hung
// socket answers (with an empty body) only once the production plugin has
// adopted the credential: offered one after the other, the hung call would
// instead end at the agent's call timeout, before the production plugin was
// asked anything.
func TestAgentHandsOverWhileAnotherSocketHangs(t *testing.T) {
	plugins := t.TempDir()
	adopted := make(chan struct{})
	sink := &conjurtest.Fake{OnAdopt: func() { close(adopted) }}
	startPlugin(t, sink, filepath.Join(plugins, "zz", pluginapi.SocketName), prodLogin, prodAccount, prodURL)

	hung := filepath.Join(plugins, "aa", pluginapi.SocketName)
	pluginapitest.Serve(t, hung, pluginapitest.Options{Hold: adopted})

	secret := filepath.Join(t.TempDir(), "conjur-bootstrap")
	writeFile(t, secret, prodCred)
	a, err := New(Options{SecretFile: secret, PluginsDir: plugins, CallTimeout: time.Minute, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	res := a.Pass(context.Background())
	if len(res.HandedTo) != 1 || len(sink.Adopted()) != 1 {
		t.Errorf("pass %+v, adopted %d: want the production plugin served", res, len(sink.Adopted()))
	}
	if why := res.Failed[hung]; !strings.Contains(why, "not JSON of the expected shape") {
		t.Errorf("the hung socket's call ended with %q; want its empty answer, given after the production plugin adopted the credential", why)
	}
}
