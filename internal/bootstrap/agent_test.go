package bootstrap

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur/conjurtest"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// agentFixture serves a driver whose credential sink is a fake, at
// plugins/<id>/conjur.sock, and an agent pointed at it with a fake clock.
type agentFixture struct {
	sink   *conjurtest.Fake
	sock   string
	secret string
	agent  *Agent
	logs   *observer.ObservedLogs
	clock  time.Time
}

func newAgentFixture(t *testing.T) *agentFixture {
	t.Helper()
	f := &agentFixture{clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	plugins := t.TempDir()
	f.sock = filepath.Join(plugins, "f00d", pluginapi.SocketName)
	f.sink = realPlugin(t, f.sock, "", "")

	f.secret = filepath.Join(t.TempDir(), "conjur-bootstrap")
	core, logs := observer.New(zap.DebugLevel)
	f.logs = logs
	a, err := New(Options{SecretFile: f.secret, PluginsDir: plugins, Interval: 10 * time.Second, MaxBackoff: 40 * time.Second, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return f.clock }
	f.agent = a
	return f
}

// testCred is a bootstrap document for the fixture's plugin (account dev,
// URL https://conjur.test) with the given login and key.
func testCred(login, key string) string {
	return `{"login":"` + login + `","api_key":"` + key + `","account":"dev","appliance_url":"https://conjur.test"}`
}

var credA = testCred("host/swarm/conjur-plugin", "key-aaaa-1111")

func TestAgentBacksOffARefusedCredential(t *testing.T) {
	f := newAgentFixture(t)
	writeFile(t, f.secret, credA)
	f.sink.FailAdopt(errors.New("conjur refused")) // becomes INTERNAL at the endpoint
	ctx := context.Background()

	if res := f.agent.Pass(ctx); len(res.Failed) != 1 {
		t.Fatalf("first pass %+v, want a refusal", res)
	}
	// Within the backoff the agent does not offer the same credential again.
	f.clock = f.clock.Add(5 * time.Second)
	res := f.agent.Pass(ctx)
	if why := res.Failed[f.sock]; !strings.Contains(why, "refused earlier; next try at") {
		t.Fatalf("second pass %+v, want a wait", res)
	}
	// The delay doubles (10s, 20s, 40s) and stops at MaxBackoff.
	var waits []time.Duration
	for range 4 {
		f.clock = f.clock.Add(time.Hour)
		f.agent.Pass(ctx)
		waits = append(waits, f.agent.state[f.sock].retryAt.Sub(f.clock))
	}
	if diff := cmp.Diff([]time.Duration{20 * time.Second, 40 * time.Second, 40 * time.Second, 40 * time.Second}, waits); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	// A different credential is offered at once, and accepted.
	f.sink.FailAdopt(nil)
	writeFile(t, f.secret, testCred("host/swarm/conjur-plugin", "key-bbbb-2222"))
	if res := f.agent.Pass(ctx); len(res.HandedTo) != 1 {
		t.Fatalf("new credential: %+v", res)
	}
	for _, e := range f.logs.All() {
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, "key-aaaa-1111") || strings.Contains(s, "key-bbbb-2222")) {
				t.Errorf("an API key appears in the agent's log: %v", e.ContextMap())
			}
		}
	}
}

func TestAgentKeepsTheKeyFromAPluginPinnedToAnotherLogin(t *testing.T) {
	f := newAgentFixture(t)
	writeFile(t, f.secret, testCred("host/other-swarm/conjur-plugin", "key-cccc-3333"))
	res := f.agent.Pass(context.Background())
	if why := res.Skipped[f.sock]; !strings.Contains(why, `pinned to login "host/swarm/conjur-plugin"`) {
		t.Fatalf("pass %+v, want the plugin skipped, naming its pinned login", res)
	}
	if n := len(f.sink.Adopted()); n != 0 {
		t.Errorf("the plugin adopted %d credentials; want none", n)
	}
}

func TestAgentProblemsAreLoggedOnce(t *testing.T) {
	f := newAgentFixture(t)
	ctx := context.Background()
	for range 3 {
		f.agent.Pass(ctx) // no secret file yet
	}
	if n := f.logs.FilterMessageSnippet("cannot read the bootstrap credential").Len(); n != 1 {
		t.Errorf("%d warnings about the missing file, want 1", n)
	}
	writeFile(t, f.secret, "not json at all key-cccc")
	f.agent.Pass(ctx)
	lines := f.logs.FilterMessageSnippet("the bootstrap credential cannot be used").All()
	if len(lines) != 1 || strings.Contains(lines[0].ContextMap()["cause"].(string), "key-cccc") {
		t.Errorf("bad credential warning: %v", lines)
	}
}

func TestNewAgentOptions(t *testing.T) {
	_, err := New(Options{Interval: -1})
	for _, want := range []string{"--secret-file", "--plugins-dir", "must not be negative", "no logger"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
