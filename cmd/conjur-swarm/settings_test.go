package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/install.md's generated settings tables and plugin/config.json's env")

// settingsTableMarker matches one generated table of docs/install.md, from
// its begin marker to its end marker.
var settingsTableMarker = regexp.MustCompile(`(?s)(<!-- begin settings table: (\w+)[^\n]*-->\n)(.*?)(<!-- end settings table -->)`)

// TestInstallDocSettingsTables: the settings tables of docs/install.md are
// exactly what the settings declarations render.
func TestInstallDocSettingsTables(t *testing.T) {
	const path = "../../docs/install.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]docTable{"plugin": pluginTable, "serve": serveTable}
	seen := map[string]bool{}
	out := settingsTableMarker.ReplaceAllStringFunc(string(data), func(m string) string {
		g := settingsTableMarker.FindStringSubmatch(m)
		tab, ok := tables[g[2]]
		if !ok {
			t.Errorf("docs/install.md names settings table %q; want plugin or serve", g[2])
			return m
		}
		seen[g[2]] = true
		want := renderSettingsTable(tab)
		if g[3] != want && !*updateDocs {
			t.Errorf("docs/install.md's %s settings table differs from the declarations in settings.go; run\n"+
				"  go test ./cmd/conjur-swarm -run TestInstallDocSettingsTables -update\nwant:\n%s\ngot:\n%s", g[2], want, g[3])
		}
		return g[1] + want + g[4]
	})
	for name := range tables {
		if !seen[name] {
			t.Errorf("docs/install.md has no generated %s settings table", name)
		}
	}
	if *updateDocs && out != string(data) {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// manifestEnvBlock is plugin/config.json's env list, one setting a line.
var manifestEnvBlock = regexp.MustCompile(`(?s)(\n  "env": \[\n)(.*?)(\n  \],\n)`)

// renderManifestEnv renders plugin/config.json's env list from the
// declarations of the plugin table: name, help, settable value, default.
func renderManifestEnv(t *testing.T) string {
	t.Helper()
	var lines []string
	for _, s := range settings {
		if s.table != pluginTable {
			continue
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(struct {
			Name        string   `json:"name"`
			Description string   `json:"description"`
			Settable    []string `json:"settable"`
			Value       string   `json:"value"`
		}{s.env, s.help, []string{"value"}, s.def}); err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSpace(b.String())
		line = strings.NewReplacer(`":"`, `": "`, `","`, `", "`, `":[`, `": [`, `],"`, `], "`).Replace(line)
		lines = append(lines, "    "+line)
	}
	return strings.Join(lines, ",\n")
}

// TestManifestEnvIsThePluginTable: plugin/config.json's env list is what the
// settings of the plugin table render (-update rewrites it), so that a
// setting is declared once.
func TestManifestEnvIsThePluginTable(t *testing.T) {
	const path = "../../plugin/config.json"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g := manifestEnvBlock.FindSubmatchIndex(data)
	if g == nil {
		t.Fatal(`plugin/config.json has no "env": [ ... ] list`)
	}
	got, want := string(data[g[4]:g[5]]), renderManifestEnv(t)
	if got == want {
		return
	}
	if !*updateDocs {
		t.Fatalf("plugin/config.json's env differs from the plugin table's declarations in settings.go; run\n"+
			"  go test ./cmd/conjur-swarm -run TestManifestEnvIsThePluginTable -update\nwant:\n%s\ngot:\n%s", want, got)
	}
	out := string(data[:g[4]]) + want + string(data[g[5]:])
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSettingsAreWellFormed: every declaration has a unique key, variable and
// flag, a default its own field accepts, help and a docs row.
func TestSettingsAreWellFormed(t *testing.T) {
	keys, envs, flags := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range settings {
		if keys[s.key] || envs[s.env] || (s.flag != "" && flags[s.flag]) {
			t.Errorf("setting %s: key, variable or flag declared twice", s.env)
		}
		keys[s.key], envs[s.env], flags[s.flag] = true, true, true
		if s.help == "" || s.doc == "" || strings.Contains(s.doc, "|") {
			t.Errorf("setting %s: help and a docs row without | are required", s.env)
		}
		var c Config
		if err := s.value.set(&c, s.def); err != nil && s.key != "socket" {
			t.Errorf("setting %s: its default %q is refused: %v", s.env, s.def, err)
		}
	}
}
