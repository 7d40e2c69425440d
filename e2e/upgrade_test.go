package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpgradeInPlaceKeepsSecrets: the upgrade install.md recommends. Secrets
// name the plugin by a stable name without a tag (the engine completes it
// with :latest); the plugin is upgraded in place under that name with
// `make upgrade`, which keeps every setting (and refuses, changing nothing,
// a new manifest that could not keep one), and the secrets created before
// are served by the new version.
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

	// A new plugin directory that could not keep a setting made above is
	// refused before anything changes.
	bad := t.TempDir()
	if err := os.Mkdir(filepath.Join(bad, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := strings.Replace(string(mustRead(t, filepath.Join(s.root, "plugin", "config.json"))),
		`{"name": "CONJUR_ACCOUNT", "description": "Conjur account", "settable": ["value"]`,
		`{"name": "CONJUR_ACCOUNT", "description": "Conjur account", "settable": []`, 1)
	if err := os.WriteFile(filepath.Join(bad, "config.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	settingsBefore := mustDocker(t, "plugin", "inspect", "-f", "{{json .Settings}}", plugin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := run(ctx, nil, filepath.Join(s.root, "scripts", "upgrade-plugin.sh"), plugin, bad)
	if err == nil || !strings.Contains(out+err.Error(), "no settable CONJUR_ACCOUNT") {
		t.Fatalf("an upgrade that would lose CONJUR_ACCOUNT: err %v, want a refusal naming it:\n%s", err, out)
	}
	if got := mustDocker(t, "plugin", "inspect", "-f", "{{.Id}} {{.Enabled}}", plugin); got != pluginID+" true" {
		t.Fatalf("after a refused upgrade the plugin is %q, want %q (untouched)", got, pluginID+" true")
	}

	// The upgrade, as docs/install.md writes it: make upgrade, on the
	// enabled plugin.
	after := "e2e-" + runID + "-v2"
	if out, err := run(ctx, nil, "make", "-C", s.root, "--no-print-directory", "upgrade",
		"PLUGIN="+repo, "TAG=latest", "VERSION="+after); err != nil {
		t.Fatalf("make upgrade: %v\n%s", err, out)
	}
	if got := mustDocker(t, "plugin", "inspect", "-f", "{{json .Settings}}", plugin); got != settingsBefore {
		t.Errorf("settings after make upgrade:\n%s\nwant those before:\n%s", got, settingsBefore)
	}
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
