package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestUpgradeInPlaceKeepsSecrets: the upgrade install.md recommends. Secrets
// name the plugin by a stable name without a tag (the engine completes it
// with :latest); the plugin is upgraded in place under that name (disable,
// make plugin, set, enable), and the secrets created before are served by
// the new version.
func TestUpgradeInPlaceKeepsSecrets(t *testing.T) {
	s := getSuite(t)
	repo := runID + "/conjur-upgrade"
	plugin := repo + ":latest"
	t.Cleanup(func() { removePlugin(plugin) })
	settings := s.pluginSettings(true, s.idDir)
	before := "e2e-" + runID + "-v1"
	pluginID, err := s.installPlugin(plugin, before, settings)
	if err != nil {
		t.Fatal(err)
	}
	if st := opsStatus(t, pluginID); st != before {
		t.Fatalf("version before the upgrade: %q, want %q", st, before)
	}

	id := s.newVariable(t, []byte("upgrade-value-1"))
	sec := s.name("upg")
	s.secret(t, repo, sec, "conjur.variable="+id) // no tag: the stable name
	svc := s.name("svc")
	s.service(t, svc, []string{sec}, "--restart-condition", "on-failure", "--restart-delay", "1s", "--update-order", "start-first")
	first, f := only(waitReaders(t, svc, 1, nil))
	checkValues(t, first, f, map[string][]byte{sec: []byte("upgrade-value-1")})

	// The upgrade, as docs/install.md writes it.
	after := "e2e-" + runID + "-v2"
	mustDocker(t, "plugin", "disable", plugin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := run(ctx, nil, "make", "-C", s.root, "--no-print-directory", "plugin",
		"PLUGIN="+repo, "TAG=latest", "VERSION="+after); err != nil {
		t.Fatalf("make plugin over the disabled plugin: %v\n%s", err, out)
	}
	mustDocker(t, append([]string{"plugin", "set", plugin}, settings...)...)
	mustDocker(t, "plugin", "enable", plugin)
	newID := mustDocker(t, "plugin", "inspect", "-f", "{{.Id}}", plugin)
	if st := opsStatus(t, newID); st != after {
		t.Fatalf("version after the upgrade: %q, want %q", st, after)
	}

	if err := s.dev.SetSecret(id, []byte("upgrade-value-2")); err != nil {
		t.Fatal(err)
	}
	old := taskIDs(t, svc)
	mustDocker(t, "service", "update", "-d", "--force", svc)
	next, f := only(waitReaders(t, svc, 1, old))
	checkValues(t, next, f, map[string][]byte{sec: []byte("upgrade-value-2")})
	if !strings.Contains(mustDocker(t, "secret", "inspect", "-f", "{{.Spec.Driver.Name}}", sec), repo) {
		t.Errorf("the secret's driver changed")
	}
}

// opsStatus is the version a plugin's status reports.
func opsStatus(t *testing.T, pluginID string) string {
	t.Helper()
	st, err := opsClient(pluginID).Status(context.Background())
	if err != nil {
		t.Fatalf("status of plugin %s: %v", pluginID, err)
	}
	return st.Version
}
