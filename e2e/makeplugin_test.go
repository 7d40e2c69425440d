package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMakePluginRefusesAnEnabledPlugin: `make plugin` pasted on a manager
// whose plugin of that name is enabled refuses, says what it would do and how
// to upgrade, and leaves the live plugin as it was.
func TestMakePluginRefusesAnEnabledPlugin(t *testing.T) {
	s := getSuite(t)
	repo, tag, _ := strings.Cut(s.plugin, ":")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := run(ctx, nil, "make", "-C", s.root, "--no-print-directory", "plugin", "PLUGIN="+repo, "TAG="+tag)
	if err == nil {
		t.Fatalf("make plugin replaced the enabled plugin %s:\n%s", s.plugin, out)
	}
	for _, want := range []string{
		s.plugin + " is installed and enabled",
		"docker plugin rm --force " + s.plugin,
		"docker plugin disable " + s.plugin,
		"FORCE=1",
	} {
		if !strings.Contains(err.Error()+out, want) {
			t.Errorf("make plugin's refusal lacks %q:\n%v\n%s", want, err, out)
		}
	}
	if id := mustDocker(t, "plugin", "inspect", "-f", "{{.Id}} {{.Enabled}}", s.plugin); id != s.pluginID+" true" {
		t.Errorf("after the refusal the plugin is %q, want %q (the same plugin, still enabled)", id, s.pluginID+" true")
	}
}
