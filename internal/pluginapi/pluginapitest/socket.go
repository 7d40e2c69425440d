// Package pluginapitest is a fake plugin socket for the tests of the
// plugin's clients (the bootstrap agent, the CLI): a unix socket that
// answers the status and bootstrap endpoints with fixed bodies and records
// what it was sent, or holds every request. A test that needs the real
// plugin serves a driver.Driver instead.
package pluginapitest

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// Options say how the fake socket answers.
type Options struct {
	Status    string // the body of every status answer (default {"configured":true})
	Bootstrap string // the body of every bootstrap answer (default {"ok":true})
	// Hold, when set, holds every request until it is closed or the caller
	// gives up: a plugin that accepts and never answers.
	Hold <-chan struct{}
}

// Socket is a fake plugin socket serving until the test ends.
type Socket struct {
	Path string

	mu       sync.Mutex
	statuses int
	handoffs []string
}

// Serve listens at path (creating its directory) and answers as o says
// until the test ends.
func Serve(t testing.TB, path string, o Options) *Socket {
	t.Helper()
	if o.Status == "" {
		o.Status = `{"configured":true}`
	}
	if o.Bootstrap == "" {
		o.Bootstrap = `{"ok":true}`
	}
	ln := Listen(t, path)
	s := &Socket{Path: path}
	mux := http.NewServeMux()
	mux.HandleFunc(pluginapi.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.statuses++
		s.mu.Unlock()
		_, _ = io.WriteString(w, o.Status)
	})
	mux.HandleFunc(pluginapi.PathBootstrap, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.handoffs = append(s.handoffs, string(body))
		s.mu.Unlock()
		_, _ = io.WriteString(w, o.Bootstrap)
	})
	var h http.Handler = mux
	if o.Hold != nil {
		h = hold(o.Hold)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close(); <-done })
	return s
}

func hold(release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
}

// Listen listens on a unix socket at path, creating its directory (0700);
// the listener closes when the test ends.
func Listen(t testing.TB, path string) net.Listener {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// Handoffs returns the bootstrap bodies received, in order.
func (s *Socket) Handoffs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.handoffs...)
}

// Calls is how many requests were answered: status and bootstrap.
func (s *Socket) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statuses + len(s.handoffs)
}
