package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// pluginManifest is the part of plugin/config.json these tests check.
type pluginManifest struct {
	Entrypoint []string
	Interface  struct {
		Types  []string
		Socket string
	}
	Network struct{ Type string }
	Linux   struct {
		Capabilities    []string
		AllowAllDevices bool
		Devices         []any
	}
	Env []struct {
		Name     string
		Settable []string
		Value    string
	}
	Mounts []struct {
		Name, Source, Destination, Type string
		Options, Settable               []string
	}
}

func readManifest(t *testing.T) pluginManifest {
	t.Helper()
	data, err := os.ReadFile("../../plugin/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var m pluginManifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("plugin/config.json: %v", err)
	}
	return m
}

// TestPluginManifest checks plugin/config.json against what Docker needs
// and what docs/ and e2e/ rely on.
func TestPluginManifest(t *testing.T) {
	m := readManifest(t)
	if !slices.Equal(m.Entrypoint, []string{"/conjur-swarm", "serve"}) {
		t.Errorf("entrypoint %v", m.Entrypoint)
	}
	if !slices.Equal(m.Interface.Types, []string{"docker.secretprovider/1.0"}) || m.Interface.Socket != "conjur.sock" {
		t.Errorf("interface %+v", m.Interface)
	}
	if m.Network.Type != "host" {
		t.Errorf("network %q: only host reaches Conjur", m.Network.Type)
	}
	if len(m.Linux.Capabilities) != 0 || m.Linux.AllowAllDevices || len(m.Linux.Devices) != 0 {
		t.Errorf("the plugin asks for privileges: %+v", m.Linux)
	}

	// Which settings, in which order, with which defaults:
	// TestManifestEnvIsThePluginTable. Here: what no setting may do there.
	known := map[string]setting{}
	for _, s := range settings {
		known[s.env] = s
	}
	for _, e := range m.Env {
		s, ok := known[e.Name]
		if !ok {
			t.Errorf("env %s is not a setting serve reads", e.Name)
			continue
		}
		if strings.Contains(e.Name, "API_KEY") || e.Name == "CONJUR_SSL_CERTIFICATE" {
			t.Errorf("env %s would put a credential in docker plugin inspect", e.Name)
		}
		if !slices.Equal(e.Settable, []string{"value"}) {
			t.Errorf("env %s is not settable", e.Name)
		}
		if e.Value != s.def {
			t.Errorf("env %s defaults to %q in the manifest and %q in serve", e.Name, e.Value, s.def)
		}
	}

	wantMounts := map[string]string{"mapping": "/etc/conjur-swarm/mapping", "ca": "/etc/conjur-swarm/ca", "identity": "/etc/conjur-swarm/identity",
		"state": "/var/lib/conjur-swarm", "swarm": "/etc/conjur-swarm/swarm"}
	for _, mt := range m.Mounts {
		if wantMounts[mt.Name] != mt.Destination {
			t.Errorf("mount %s -> %s", mt.Name, mt.Destination)
		}
		delete(wantMounts, mt.Name)
		// Only the state mount (the per-request identity mode's signing
		// keys) is written; it is the default of CONJUR_SWARM_IDENTITY_STATE_DIR.
		mode := "ro"
		if mt.Name == "state" {
			mode = "rw"
			if known["CONJUR_SWARM_IDENTITY_STATE_DIR"].def != mt.Destination {
				t.Errorf("CONJUR_SWARM_IDENTITY_STATE_DIR defaults to %q, not the state mount %q", known["CONJUR_SWARM_IDENTITY_STATE_DIR"].def, mt.Destination)
			}
		}
		if mt.Type != "bind" || !slices.Contains(mt.Options, mode) || !slices.Equal(mt.Settable, []string{"source"}) {
			t.Errorf("mount %s is not a settable %s bind: %+v", mt.Name, mode, mt)
		}
		// No mount's default reaches into the engine: the swarm mount
		// (authn-cert) would hand the node's key to every install, used or
		// not, so the operator who chooses CONJUR_AUTHN_TYPE=cert sets it.
		if mt.Source == "" || strings.HasPrefix(mt.Source, "/run") || strings.Contains(mt.Source, "docker") {
			t.Errorf("mount %s default source %q: empty mounts the runtime bundle, /run and docker dirs hold sockets", mt.Name, mt.Source)
		}
	}
	if len(wantMounts) != 0 {
		t.Errorf("mounts missing: %v", wantMounts)
	}
}

// TestInstallDocListsEverySetting: docs/install.md's reference names every
// setting serve reads, with its default.
func TestInstallDocListsEverySetting(t *testing.T) {
	data, err := os.ReadFile("../../docs/install.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, s := range settings {
		row := ""
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "| `"+s.env+"`") {
				row = line
				break
			}
		}
		if row == "" {
			t.Errorf("docs/install.md has no reference row for %s", s.env)
			continue
		}
		def := "(none)"
		if s.def != "" {
			def = "`" + s.def + "`"
		}
		if !strings.Contains(row, "| "+def+" |") {
			t.Errorf("docs/install.md gives %s a default other than %s: %s", s.env, def, row)
		}
	}
}
