package conjur

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// writeCA replaces the CA file as an operator fixing it would.
func writeCA(t *testing.T, path string, pem []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// otherCA is the CA of another dev server: not the one that signed l's
// certificate.
func otherCA(t *testing.T) []byte {
	t.Helper()
	srv, err := conjurdev.New(conjurdev.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	return l.CAPEM
}

// caClient is a TLS client of l trusting the CA in a file that starts
// with pem.
func caClient(t *testing.T, s *devServer, l *conjurdev.Listener, pem []byte) (*Client, string, *observer.ObservedLogs) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conjur.pem")
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(s.key, l.URL)
	cfg.AllowHTTP, cfg.CACertPEM, cfg.CACertFile = false, pem, path
	core, logs := observer.New(zap.InfoLevel)
	c, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path, logs
}

// TestCAFileFixedInPlace: a wrong CA file, once corrected, is used by the
// very next request: its TLS failure re-reads the file before it is
// reported, so no restart is needed.
func TestCAFileFixedInPlace(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	l := s.listen(t, true)
	other := otherCA(t) // the wrong one for l

	c, path, logs := caClient(t, s, l, other)
	if _, err := c.Get(t.Context(), Ref{ID: varID(0)}); CodeOf(err) != errcode.TLS {
		t.Fatalf("with the wrong CA: %+v, want TLS", err)
	}
	writeCA(t, path, l.CAPEM)
	if v := mustGet(t, c, varID(1)); string(v.Data) != varValue(1) {
		t.Fatalf("after the fix: %q", v.Data)
	}
	if n := logs.FilterMessage("Conjur CA certificate reloaded").FilterField(zap.String("why", "a TLS failure")).Len(); n != 1 {
		t.Errorf("%d reload log lines after a TLS failure, want 1: %v", n, logs.All())
	}

	// A TLS failure with an unchanged file is reported, not retried forever.
	writeCA(t, path, other)
	c.sess.reloadCA(false, "test poll")
	if _, err := c.Get(t.Context(), Ref{ID: varID(2)}); CodeOf(err) != errcode.TLS {
		t.Fatalf("with the wrong CA again: %+v, want TLS", err)
	}
}

// TestCAFileWatched: the watcher adopts a changed CA file, and ignores one
// that holds no certificate, keeping the CA in use.
func TestCAFileWatched(t *testing.T) {
	s := newDevServer(t, conjurdev.Options{})
	l := s.listen(t, true)
	other := otherCA(t)
	c, path, logs := caClient(t, s, l, l.CAPEM)
	mustGet(t, c, varID(0))

	writeCA(t, path, []byte("not a certificate\n"))
	if c.sess.reloadCA(false, "test poll") {
		t.Fatal("a file with no certificate was adopted")
	}
	if logs.FilterMessageSnippet("holds no PEM certificate; keeping the CA in use").Len() != 1 {
		t.Errorf("the unusable CA file was not logged once: %v", logs.All())
	}
	if c.sess.reloadCA(false, "test poll") {
		t.Fatal("an unchanged file was adopted")
	}
	mustGet(t, c, varID(1))

	writeCA(t, path, other)
	if !c.sess.reloadCA(false, "test poll") {
		t.Fatal("a changed, usable CA file was not adopted")
	}
	if _, err := c.Get(t.Context(), Ref{ID: varID(3)}); CodeOf(err) != errcode.TLS || !strings.Contains(err.Error(), "CONJUR_CERT_FILE") {
		t.Fatalf("the old CA was still trusted after the swap: %+v", err)
	}
}
