package bootstrap

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjur/conjurtest"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// startPluginAt starts a plugin instance at sock whose credentials go to
// sink; stop ends it (see startPlugin).
func startPluginAt(t *testing.T, sink *conjurtest.Fake, sock string) (stop func()) {
	t.Helper()
	return startPlugin(t, sink, sock, "", "")
}

// runWatchingAgent runs an agent over plugins, with credA, until the test
// ends: passes an hour apart (and an hour of back-off), a look at the
// sockets every 10 ms, so that only the watch can hand anything over after
// the first pass.
func runWatchingAgent(t *testing.T, plugins string) (*Agent, *observer.ObservedLogs) {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "conjur-bootstrap")
	writeFile(t, secret, credA)
	core, logs := observer.New(zap.DebugLevel)
	a, err := New(Options{SecretFile: secret, PluginsDir: plugins, Interval: time.Hour, WatchInterval: 10 * time.Millisecond,
		MaxBackoff: time.Hour, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, logs
}

// waitFor polls cond until it holds or a generous deadline passes (the
// deadline only bounds a broken test; nothing is timed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAgentHandsOverAtOnceToARestartedPlugin: with passes an hour apart, a
// plugin that restarts (a new socket file at the same path) gets the
// credential from the watcher, even though the plugin before it refused the
// credential and earned an hour of back-off.
func TestAgentHandsOverAtOnceToARestartedPlugin(t *testing.T) {
	plugins := t.TempDir()
	sock := filepath.Join(plugins, "f00d", pluginapi.SocketName)
	first := &conjurtest.Fake{AdoptErr: &conjur.Error{Code: errcode.AuthRefused, Msg: "Conjur refused it"}}
	stopFirst := startPluginAt(t, first, sock)

	a, logs := runWatchingAgent(t, plugins)

	waitFor(t, "the first plugin's refusal", func() bool { return logs.FilterMessageSnippet("plugin refused the credential").Len() == 1 })
	a.mu.Lock()
	backedOff := a.state[sock] != nil && a.state[sock].retryAt.After(time.Now().Add(30*time.Minute))
	a.mu.Unlock()
	if !backedOff {
		t.Fatal("the refusal earned no back-off")
	}

	stopFirst()
	second := &conjurtest.Fake{}
	startPluginAt(t, second, sock)
	waitFor(t, "the restarted plugin to hold the credential", func() bool { return len(second.Adopted()) == 1 })
	if logs.FilterMessageSnippet("new or restarted plugin socket").Len() == 0 {
		t.Error("the handover was not logged as caused by a new socket")
	}

	// A plugin enabled later, under a new plugin ID, is found the same way.
	third := &conjurtest.Fake{}
	startPluginAt(t, third, filepath.Join(plugins, "beef", pluginapi.SocketName))
	waitFor(t, "a newly enabled plugin to hold the credential", func() bool {
		if len(third.Adopted()) == 1 {
			return true
		}
		for _, e := range logs.All() {
			t.Log(e.Message, e.ContextMap())
		}
		return false
	})
}

// TestAgentLogsARefusedFingerprintAtErrorOnce: a wrong key in the bootstrap
// secret is an error line the first time, not a warning every back-off.
func TestAgentLogsARefusedFingerprintAtErrorOnce(t *testing.T) {
	f := newAgentFixture(t)
	writeFile(t, f.secret, credA)
	f.sink.FailAdopt(&conjur.Error{Code: errcode.AuthRefused, Msg: "Conjur refused it"})
	for range 3 {
		f.agent.Pass(context.Background())
		f.clock = f.clock.Add(time.Hour)
	}
	if n := f.logs.FilterMessageSnippet("plugin refused the credential").FilterLevelExact(zap.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d error lines for one refused fingerprint, want 1", n)
	}
	if n := f.logs.FilterMessageSnippet("plugin refused the credential again").Len(); n != 2 {
		t.Errorf("%d debug lines for the later refusals, want 2", n)
	}
	writeFile(t, f.secret, testCred("host/swarm/conjur-plugin", "key-bbbb-2222"))
	f.agent.Pass(context.Background())
	if n := f.logs.FilterMessageSnippet("plugin refused the credential").FilterLevelExact(zap.ErrorLevel).Len(); n != 2 {
		t.Errorf("%d error lines after a second refused fingerprint, want 2", n)
	}
}

// TestAgentRetriesATransientRefusalAtTheInterval: a refusal that says
// nothing about the key (TLS: a CA being fixed) is retried every Interval,
// not after a growing back-off.
func TestAgentRetriesATransientRefusalAtTheInterval(t *testing.T) {
	f := newAgentFixture(t)
	writeFile(t, f.secret, credA)
	f.sink.FailAdopt(&conjur.Error{Code: errcode.TLS, Msg: "Conjur's certificate could not be verified"})
	for range 3 {
		f.agent.Pass(context.Background())
		if wait := f.agent.state[f.sock].retryAt.Sub(f.clock); wait != 10*time.Second {
			t.Fatalf("retry after %s, want the interval (10s)", wait)
		}
		f.clock = f.clock.Add(time.Hour)
	}
}

// TestAgentAsksAStartingPluginAgain: a socket that exists but does not
// answer yet (bound, not yet listening: its plugin is starting) is asked
// again at the next look, and gets the credential once it answers, with
// passes an hour apart.
func TestAgentAsksAStartingPluginAgain(t *testing.T) {
	plugins := t.TempDir()
	sock := filepath.Join(plugins, "cafe", pluginapi.SocketName)
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), sock)
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}

	_, logs := runWatchingAgent(t, plugins)
	waitFor(t, "the starting plugin's socket to be tried", func() bool {
		return logs.FilterMessageSnippet("plugin did not answer status").Len() > 0
	})

	if err := syscall.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	sink := &conjurtest.Fake{}
	servePluginOn(t, sink, ln, "", "")
	waitFor(t, "the plugin to hold the credential once it answers", func() bool { return len(sink.Adopted()) == 1 })
}
