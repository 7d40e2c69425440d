package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootstrapAgentOnce: one pass against a plugin under a plugins
// directory laid out like /run/docker/plugins/<id>/conjur.sock. The plugin
// has no Conjur settings, so the agent does not hand the credential over and
// says why; the key never reaches the output.
func TestBootstrapAgentOnce(t *testing.T) {
	clearEnv(t)
	plugins := t.TempDir()
	sock := filepath.Join(plugins, "abc123", "conjur.sock")
	stop := startQuietPlugin(t, sock)
	defer stop()
	secret := filepath.Join(t.TempDir(), "conjur-bootstrap")
	if err := os.WriteFile(secret, []byte(`{"login":"host/swarm/conjur-plugin","api_key":"key-eeee-5555"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := execCLI("bootstrap-agent", "--once", "--secret-file", secret, "--plugins-dir", plugins, "--log-level", "error")
	if code != 1 || !strings.Contains(stderr, sock+": plugin not configured") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "key-eeee-5555") {
		t.Error("the key appears in the output")
	}

	_, stderr, code = execCLI("bootstrap-agent", "--once", "--secret-file", secret, "--plugins-dir", t.TempDir(), "--log-level", "error")
	if code != 1 || !strings.Contains(stderr, "not every plugin holds the credential") {
		t.Errorf("no plugin: exit %d %s", code, stderr)
	}
}
