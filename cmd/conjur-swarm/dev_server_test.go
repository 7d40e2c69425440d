package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
)

// lineWriter collects output and signals when a line containing want has
// been written.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	ready chan struct{}
	once  sync.Once
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, _ := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.ready) })
	}
	return n, nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startDevServer starts the dev-server command with args and waits until it
// serves; stop ends it (as SIGINT does) and returns its error.
func startDevServer(t *testing.T, args ...string) (text string, stop func() error) {
	t.Helper()
	out := &lineWriter{want: "stop with Ctrl-C\n", ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newRootCmd()
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(append([]string{"dev-server"}, args...))
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	select {
	case <-out.ready:
	case err := <-done:
		cancel()
		t.Fatalf("dev-server ended before serving: %v\n%s", err, out.String())
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return out.String(), stop
}

var (
	printedURL = regexp.MustCompile(`URL: (https://127\.0\.0\.1:\d+)`)
	printedKey = regexp.MustCompile(`host/swarm/conjur-plugin (\S+)`)
)

// fetchDemo fetches apps/demo/db-password as the plugin's host.
func fetchDemo(t *testing.T, url, caFile, key string) (string, error) {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("CA file: %v", err)
	}
	c, err := conjurapi.NewClientFromKey(conjurapi.Config{
		Account: "dev", ApplianceURL: url, SSLCert: string(pem),
		CredentialStorage: conjurapi.CredentialStorageNone, Environment: conjurapi.EnvironmentOSS,
	}, authn.LoginPair{Login: "host/swarm/conjur-plugin", APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.GetHttpClient().CloseIdleConnections()
	got, err := c.RetrieveSecret("apps/demo/db-password")
	return string(got), err
}

func TestDevServerCommand(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	text, stop := startDevServer(t, "--listen", "127.0.0.1:0", "--demo", "../../docs/examples",
		"--tls-ca-out", ca, "--admin-api-key", "test-admin-key", "--log-level", "error", "--read-only")
	url := printedURL.FindStringSubmatch(text)
	key := printedKey.FindStringSubmatch(text)
	if url == nil || key == nil {
		t.Fatalf("output lacks the URL or the plugin's key:\n%s", text)
	}
	if got, err := fetchDemo(t, url[1], ca, key[1]); err != nil || got != "demo-db-password-0001" {
		t.Fatalf("fetch through the printed URL and key: %q, %v", got, err)
	}
	if err := stop(); err != nil { // what SIGINT/SIGTERM do through main's signal context
		t.Fatalf("dev-server after cancel: %v", err)
	}

	normal := regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(text, "127.0.0.1:PORT")
	normal = strings.ReplaceAll(normal, key[1], "PLUGIN_KEY")
	normal = strings.ReplaceAll(normal, ca, "CA_FILE")
	golden := filepath.Join("testdata", "dev-server", "start.golden")
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(normal), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if normal != string(want) {
		t.Errorf("output differs from %s (run with -update after checking):\n--- got\n%s\n--- want\n%s", golden, normal, want)
	}
}

// TestDevServerCommand_state restarts a dev-server that keeps its state:
// the client set up against the first start (its CA file and the plugin's
// API key) keeps working against the second, which keeps the value
// changed in between and skips the preloads.
func TestDevServerCommand_state(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	args := []string{"--listen", "127.0.0.1:0", "--demo", "../../docs/examples", "--state", dir,
		"--tls-ca-out", ca, "--log-level", "error"}
	text, stop := startDevServer(t, args...)
	url, key := printedURL.FindStringSubmatch(text), printedKey.FindStringSubmatch(text)
	admin := regexp.MustCompile(`admin: login admin, API key (\S+)`).FindStringSubmatch(text)
	if url == nil || key == nil || admin == nil || !strings.Contains(text, "state: "+dir+", new") {
		t.Fatalf("first start output:\n%s", text)
	}
	c, err := conjurapi.NewClientFromKey(conjurapi.Config{
		Account: "dev", ApplianceURL: url[1], SSLCert: mustRead(t, ca),
		CredentialStorage: conjurapi.CredentialStorageNone, Environment: conjurapi.EnvironmentOSS,
	}, authn.LoginPair{Login: "admin", APIKey: admin[1]})
	if err != nil {
		t.Fatal(err)
	}
	err = c.AddSecret("apps/demo/db-password", "set-during-the-rehearsal")
	c.GetHttpClient().CloseIdleConnections()
	if err != nil {
		t.Fatal(err)
	}
	caBefore := mustRead(t, ca)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	text2, stop2 := startDevServer(t, args...)
	url2 := printedURL.FindStringSubmatch(text2)
	if url2 == nil || !strings.Contains(text2, "state: "+dir+", restored") || !strings.Contains(text2, "API key "+admin[1]+"\n") {
		t.Fatalf("second start output:\n%s", text2)
	}
	if mustRead(t, ca) != caBefore {
		t.Fatal("--tls-ca-out got another CA after the restart")
	}
	if got, err := fetchDemo(t, url2[1], ca, key[1]); err != nil || got != "set-during-the-rehearsal" {
		t.Fatalf("after the restart, with the first start's CA and key: %q, %v (the preloaded value must not come back)", got, err)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDevServerFlags_validate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // every problem named
	}{
		{"fail/every-problem-at-once", []string{"--listen", "nope", "--fail-rate", "2", "--drop-rate", "-1", "--token-ttl", "0s"},
			[]string{"--listen", "--fail-rate 2", "--drop-rate", "--token-ttl", "--fail-status"}},
		{"fail/status-without-rate", []string{"--fail-status", "503"}, []string{"--fail-rate"}},
		{"fail/empty-policy-file", []string{"--policy", "apps="}, []string{"--policy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newRootCmd()
			var buf bytes.Buffer
			cmd.SetOut(&buf)
			cmd.SetErr(&buf)
			cmd.SetArgs(append([]string{"dev-server"}, tt.args...))
			err := cmd.ExecuteContext(context.Background())
			if err == nil {
				t.Fatalf("accepted %v", tt.args)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}
