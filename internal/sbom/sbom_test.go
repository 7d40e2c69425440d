package sbom

import (
	"bytes"
	"crypto/sha256"
	"os"
	"regexp"
	"runtime/debug"
	"testing"
	"time"
)

var fixture = &debug.BuildInfo{
	GoVersion: "go1.27.3",
	Path:      "github.com/cyberark/conjur-swarm/cmd/conjur-swarm",
	Main:      debug.Module{Path: "github.com/cyberark/conjur-swarm", Version: "(devel)"},
	Deps: []*debug.Module{
		{Path: "go.uber.org/zap", Version: "v1.28.0", Sum: "h1:zap="},
		{Path: "example.com/old", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v1.0.1", Sum: "h1:fork="}},
	},
	Settings: []debug.BuildSetting{
		{Key: "-ldflags", Value: "-s -w -X main.version=v3.0.0"},
		{Key: "-trimpath", Value: "true"},
		{Key: "GOARCH", Value: "arm64"},
		{Key: "GOOS", Value: "linux"},
	},
}

var spdxID = regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.-]+$`)

func TestBuildDescribesTheBinaryAndEveryModule(t *testing.T) {
	sum := sha256.Sum256([]byte("binary"))
	doc := Build(fixture, "conjur-swarm", sum, time.Unix(0, 0))

	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo.Created != "1970-01-01T00:00:00Z" {
		t.Errorf("header: %+v", doc)
	}
	bin := doc.Packages[0]
	if bin.VersionInfo != "v3.0.0" || bin.Checksums[0].ChecksumValue != "9a3a45d01531a20e89ac6ae10b0b0beb0492acd7216a368aa062d1a5fecaf9cd" {
		t.Errorf("binary package: version %q (want the -X main.version), checksum %v", bin.VersionInfo, bin.Checksums)
	}
	want := map[string]string{ // purl -> name
		"pkg:golang/stdlib@go1.27.3":         "stdlib",
		"pkg:golang/go.uber.org/zap@v1.28.0": "go.uber.org/zap",
		"pkg:golang/example.com/fork@v1.0.1": "example.com/fork", // the replacement is what is linked
	}
	ids := map[string]bool{doc.SPDXID: true}
	depends := map[string]bool{}
	for _, r := range doc.Relationships {
		if r.Type == "DEPENDS_ON" && r.Element == bin.SPDXID {
			depends[r.Related] = true
		}
	}
	for _, p := range doc.Packages {
		if !spdxID.MatchString(p.SPDXID) || ids[p.SPDXID] {
			t.Errorf("package %q: SPDXID %q is not a valid, unique SPDX identifier", p.Name, p.SPDXID)
		}
		ids[p.SPDXID] = true
		if p.SPDXID == bin.SPDXID {
			continue
		}
		purl := p.ExternalRefs[0].ReferenceLocator
		if want[purl] != p.Name {
			t.Errorf("unexpected package %q (%s)", p.Name, purl)
		}
		delete(want, purl)
		if !depends[p.SPDXID] {
			t.Errorf("no DEPENDS_ON from the binary to %q", p.Name)
		}
	}
	for purl := range want {
		t.Errorf("missing package %s", purl)
	}
	if len(doc.Relationships) == 0 || doc.Relationships[0] != (Relationship{"SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Binary"}) {
		t.Errorf("the document does not describe the binary first: %v", doc.Relationships)
	}
}

func TestTheSameBinaryGivesTheSameDocument(t *testing.T) {
	sum := sha256.Sum256([]byte("binary"))
	a, _ := Build(fixture, "conjur-swarm", sum, time.Unix(1700000000, 0)).JSON()
	b, _ := Build(fixture, "conjur-swarm", sum, time.Unix(1700000000, 0)).JSON()
	if !bytes.Equal(a, b) {
		t.Fatal("two documents of one binary differ")
	}
	other, _ := Build(fixture, "conjur-swarm", sha256.Sum256([]byte("other")), time.Unix(1700000000, 0)).JSON()
	if bytes.Equal(a, other) {
		t.Fatal("documents of two binaries are identical (the namespace must name the binary's digest)")
	}
}

func TestFromFileRefusesAFileThatIsNotAGoBinary(t *testing.T) {
	path := t.TempDir() + "/notes.txt"
	if err := os.WriteFile(path, []byte("not a binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(path, "notes", time.Now()); err == nil || !regexp.MustCompile(`no Go build information`).MatchString(err.Error()) {
		t.Fatalf("FromFile of a text file: %v, want 'no Go build information'", err)
	}
}
