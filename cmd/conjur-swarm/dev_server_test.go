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

func TestDevServerCommand(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	out := &lineWriter{want: "stop with Ctrl-C\n", ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newRootCmd()
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"dev-server", "--listen", "127.0.0.1:0", "--demo", "../../docs/examples",
		"--tls-ca-out", ca, "--admin-api-key", "test-admin-key", "--log-level", "error", "--read-only"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	select {
	case <-out.ready:
	case err := <-done:
		t.Fatalf("dev-server ended before serving: %v\n%s", err, out.String())
	}
	text := out.String()
	url := regexp.MustCompile(`URL: (https://127\.0\.0\.1:\d+)`).FindStringSubmatch(text)
	key := regexp.MustCompile(`host/swarm/conjur-plugin (\S+)`).FindStringSubmatch(text)
	if url == nil || key == nil {
		t.Fatalf("output lacks the URL or the plugin's key:\n%s", text)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatalf("CA file: %v", err)
	}
	c, err := conjurapi.NewClientFromKey(conjurapi.Config{
		Account: "dev", ApplianceURL: url[1], SSLCert: string(pem),
		CredentialStorage: conjurapi.CredentialStorageNone, Environment: conjurapi.EnvironmentOSS,
	}, authn.LoginPair{Login: "host/swarm/conjur-plugin", APIKey: key[1]})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.RetrieveSecret("apps/demo/db-password")
	c.GetHttpClient().CloseIdleConnections()
	if err != nil || string(got) != "demo-db-password-0001" {
		t.Fatalf("fetch through the printed URL and key: %q, %v", got, err)
	}

	cancel() // what SIGINT/SIGTERM do through main's signal context
	if err := <-done; err != nil {
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
