package bootstrap

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/driver"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The agent is tested against the real plugin: a driver.Driver served on a
// unix socket, whose Conjur side is these fakes.

// fakeSink adopts credentials, with a failure switch.
type fakeSink struct {
	mu      sync.Mutex
	err     error
	adopted []conjur.Credential
	onAdopt func() // called after each adoption, when set
}

func (f *fakeSink) Adopt(_ context.Context, c conjur.Credential) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.adopted = append(f.adopted, c)
	if f.onAdopt != nil {
		f.onAdopt()
	}
	return nil
}

func (f *fakeSink) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.adopted)
}

// fakeConjurStatus reports the sink's last credential for login and urls
// (default host/swarm/conjur-plugin and https://conjur.test).
type fakeConjurStatus struct {
	sink  *fakeSink
	login string
	urls  []string
}

func (f fakeConjurStatus) Status() conjur.Status {
	st := conjur.Status{Login: "host/swarm/conjur-plugin", CredentialSource: "none", LastURL: "https://conjur.test",
		URLs: []conjur.URLStatus{{URL: "https://conjur.test", Healthy: true}}}
	if f.login != "" {
		st.Login = f.login
	}
	if len(f.urls) > 0 {
		st.URLs, st.LastURL = nil, f.urls[0]
		for _, u := range f.urls {
			st.URLs = append(st.URLs, conjur.URLStatus{URL: u, Healthy: true})
		}
	}
	f.sink.mu.Lock()
	defer f.sink.mu.Unlock()
	if n := len(f.sink.adopted); n > 0 {
		st.CredentialSource, st.CredentialFingerprint = "handoff", f.sink.adopted[n-1].Fingerprint()
	}
	return st
}

// noValues is a Fetcher that has no variable: the plugin counts as
// configured, and the agent never asks it for a value.
type noValues struct{}

func (noValues) Get(context.Context, conjur.Ref) (conjur.Value, error) {
	return conjur.Value{}, errors.New("no values in the agent's tests")
}

// realPlugin serves a driver whose Conjur settings are account and urls
// (default dev and https://conjur.test), pinned to login, at sock; its
// credential sink records what it adopts.
func realPlugin(t *testing.T, sock, login, account string, urls ...string) *fakeSink {
	t.Helper()
	sink := &fakeSink{}
	startPlugin(t, sink, sock, login, account, urls...)
	return sink
}

// startPlugin is realPlugin with the sink given, and a stop that ends the
// plugin and removes its socket, as a plugin disabled or restarted does.
func startPlugin(t *testing.T, sink *fakeSink, sock, login, account string, urls ...string) (stop func()) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return servePluginOn(t, sink, ln, login, account, urls...)
}

// servePluginOn is startPlugin on a listener of the caller's.
func servePluginOn(t *testing.T, sink *fakeSink, ln net.Listener, login, account string, urls ...string) (stop func()) {
	t.Helper()
	if account == "" {
		account = "dev"
	}
	if len(urls) == 0 {
		urls = []string{"https://conjur.test"}
	}
	store, err := policy.NewStore("", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	d, err := driver.New(driver.Options{
		Resolver: store, Fetcher: noValues{}, Account: account, ApplianceURLs: urls,
		Credentials: sink, ConjurStatus: fakeConjurStatus{sink: sink, login: login, urls: urls},
		Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := driver.NewServer(d, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, time.Second) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
