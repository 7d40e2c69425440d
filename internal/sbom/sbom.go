// Package sbom describes a Go binary as an SPDX 2.3 document, from the
// module graph the Go linker records in every binary it builds (the same
// data `go version -m` prints): the binary itself with its SHA-256, the Go
// standard library at the toolchain's version, and every module linked in,
// each with a purl and its go.sum hash. The document is a pure function of
// the binary and the creation time given, so a reproducible build gives a
// byte-identical SBOM.
package sbom

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"time"
)

// Document is the part of SPDX 2.3's JSON form that an SBOM of a Go binary
// fills.
type Document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      CreationInfo   `json:"creationInfo"`
	Packages          []Package      `json:"packages"`
	Relationships     []Relationship `json:"relationships"`
}

// CreationInfo says when and by what the document was made.
type CreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

// Package is one SPDX package: the binary, the standard library or a module.
type Package struct {
	Name                  string        `json:"name"`
	SPDXID                string        `json:"SPDXID"`
	VersionInfo           string        `json:"versionInfo"`
	DownloadLocation      string        `json:"downloadLocation"`
	FilesAnalyzed         bool          `json:"filesAnalyzed"`
	LicenseConcluded      string        `json:"licenseConcluded"`
	LicenseDeclared       string        `json:"licenseDeclared"`
	CopyrightText         string        `json:"copyrightText"`
	PrimaryPackagePurpose string        `json:"primaryPackagePurpose,omitempty"`
	Checksums             []Checksum    `json:"checksums,omitempty"`
	ExternalRefs          []ExternalRef `json:"externalRefs,omitempty"`
	Comment               string        `json:"comment,omitempty"`
}

// Checksum is a package's digest.
type Checksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

// ExternalRef points at the package in a package manager (a purl).
type ExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

// Relationship links two SPDX elements.
type Relationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// Creator names this package in every document it writes.
const Creator = "Tool: conjur-swarm-sbom"

const noAssertion = "NOASSERTION"

// FromFile reads the Go build information of the binary at path and
// describes it; name is the binary's name in the document.
func FromFile(path, name string, created time.Time) (Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Document{}, err
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return Document{}, fmt.Errorf("%s holds no Go build information (is it a Go binary?): %w", path, err)
	}
	return Build(info, name, sha256.Sum256(data), created), nil
}

// Build describes a binary from its build information and SHA-256.
func Build(info *debug.BuildInfo, name string, sum [32]byte, created time.Time) Document {
	digest := hex.EncodeToString(sum[:])
	bin := Package{
		Name:                  name,
		SPDXID:                "SPDXRef-Binary",
		VersionInfo:           mainVersion(info),
		DownloadLocation:      noAssertion,
		LicenseConcluded:      noAssertion,
		LicenseDeclared:       noAssertion,
		CopyrightText:         noAssertion,
		PrimaryPackagePurpose: "APPLICATION",
		Checksums:             []Checksum{{Algorithm: "SHA256", ChecksumValue: digest}},
		Comment:               "Go module " + info.Main.Path + "; build settings: " + settings(info),
	}
	doc := Document{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "https://github.com/cyberark/conjur-swarm/spdx/" + idPart(name) + "-" + digest,
		CreationInfo:      CreationInfo{Created: created.UTC().Format(time.RFC3339), Creators: []string{Creator}},
		Packages:          []Package{bin, module("stdlib", info.GoVersion, "", 0)},
		Relationships:     []Relationship{{"SPDXRef-DOCUMENT", "DESCRIBES", bin.SPDXID}},
	}
	for i, dep := range info.Deps {
		m := dep
		if dep.Replace != nil {
			m = dep.Replace
		}
		pkg := module(m.Path, m.Version, m.Sum, i+1)
		if dep.Replace != nil {
			pkg.Comment = "replaces " + dep.Path + "@" + dep.Version + "; " + pkg.Comment
		}
		doc.Packages = append(doc.Packages, pkg)
	}
	for _, p := range doc.Packages[1:] {
		doc.Relationships = append(doc.Relationships, Relationship{bin.SPDXID, "DEPENDS_ON", p.SPDXID})
	}
	return doc
}

// JSON is the document as indented JSON with a final newline.
func (d Document) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// module is a Go module (or the standard library, n 0) as an SPDX package.
func module(path, version, sum string, n int) Package {
	p := Package{
		Name:             path,
		SPDXID:           fmt.Sprintf("SPDXRef-Module-%d-%s", n, idPart(path)),
		VersionInfo:      version,
		DownloadLocation: noAssertion,
		LicenseConcluded: noAssertion,
		LicenseDeclared:  noAssertion,
		CopyrightText:    noAssertion,
		ExternalRefs: []ExternalRef{{
			ReferenceCategory: "PACKAGE-MANAGER",
			ReferenceType:     "purl",
			ReferenceLocator:  "pkg:golang/" + path + "@" + version,
		}},
	}
	if path != "stdlib" && version != "" {
		p.DownloadLocation = "https://proxy.golang.org/" + path + "/@v/" + version + ".zip"
	}
	if sum != "" {
		p.Comment = "go.sum " + sum
	}
	return p
}

// mainVersion is the version stamped with -X main.version=..., else the
// main module's.
func mainVersion(info *debug.BuildInfo) string {
	for _, s := range info.Settings {
		if s.Key != "-ldflags" {
			continue
		}
		for _, f := range strings.Fields(s.Value) {
			if v, ok := strings.CutPrefix(f, "main.version="); ok {
				return v
			}
		}
	}
	if info.Main.Version != "" {
		return info.Main.Version
	}
	return noAssertion
}

// settings lists the build settings that say how the binary was made.
func settings(info *debug.BuildInfo) string {
	var out []string
	for _, s := range info.Settings {
		switch s.Key {
		case "GOOS", "GOARCH", "CGO_ENABLED", "-trimpath", "-buildmode", "GOAMD64", "GOARM64":
			out = append(out, s.Key+"="+s.Value)
		}
	}
	return strings.Join(out, " ")
}

var notIDChar = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// idPart makes text fit an SPDX identifier ([A-Za-z0-9.-]).
func idPart(text string) string { return notIDChar.ReplaceAllString(text, "-") }
