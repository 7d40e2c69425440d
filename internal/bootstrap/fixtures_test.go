package bootstrap

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur/conjurtest"
	"github.com/cyberark/conjur-swarm/internal/driver"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The agent is tested against the real plugin: a driver.Driver served on a
// unix socket, whose Conjur side is these fakes.

// The plugin's Conjur side is a conjurtest.Fake without values: the agent
// never asks for one; its adoptions are the handoffs the plugin accepted.

// realPlugin serves a driver whose Conjur settings are account and urls
// (default dev and https://conjur.test), pinned to login, at sock; its
// credential sink records what it adopts.
func realPlugin(t *testing.T, sock, login, account string, urls ...string) *conjurtest.Fake {
	t.Helper()
	sink := &conjurtest.Fake{}
	startPlugin(t, sink, sock, login, account, urls...)
	return sink
}

// startPlugin is realPlugin with the sink given, and a stop that ends the
// plugin and removes its socket, as a plugin disabled or restarted does.
func startPlugin(t *testing.T, sink *conjurtest.Fake, sock, login, account string, urls ...string) (stop func()) {
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
func servePluginOn(t *testing.T, sink *conjurtest.Fake, ln net.Listener, login, account string, urls ...string) (stop func()) {
	t.Helper()
	if account == "" {
		account = "dev"
	}
	if len(urls) == 0 {
		urls = []string{"https://conjur.test"}
	}
	sink.SetStatus(login, urls)
	store, err := policy.NewStore("", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	d, err := driver.New(driver.Options{
		Resolver: store, Account: account, ApplianceURLs: urls,
		Conjur: sink,
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
