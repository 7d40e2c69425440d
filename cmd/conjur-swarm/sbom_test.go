package main

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/sbom"
)

// TestSBOMOfThisBinaryListsItsModules: `conjur-swarm sbom` with no argument
// describes its own file (here the test binary), listing every module the
// running program reports it was built with, at that version.
func TestSBOMOfThisBinaryListsItsModules(t *testing.T) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"sbom", "--created", "2026-12-07T00:00:00Z", "--name", "conjur-swarm"})
	if err := root.Execute(); err != nil {
		t.Fatalf("sbom: %v\n%s", err, errOut.String())
	}
	var doc sbom.Document
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("sbom printed no JSON document: %v\n%s", err, out.String())
	}
	got := map[string]string{}
	for _, p := range doc.Packages {
		got[p.Name] = p.VersionInfo
	}
	info, _ := debug.ReadBuildInfo()
	if len(info.Deps) == 0 {
		t.Fatal("the test binary reports no modules")
	}
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		if got[d.Path] != d.Version {
			t.Errorf("module %s: SBOM says %q, the binary was built with %q", d.Path, got[d.Path], d.Version)
		}
	}
	if doc.CreationInfo.Created != "2026-12-07T00:00:00Z" || doc.Name != "conjur-swarm" {
		t.Errorf("created %q, name %q: the flags were not applied", doc.CreationInfo.Created, doc.Name)
	}
}

func TestSBOMRefusesABadCreationTime(t *testing.T) {
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"sbom", "--created", "yesterday"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("sbom --created yesterday: %v, want an error naming the format", err)
	}
}
