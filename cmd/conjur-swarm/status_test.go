package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata/")
	}
}

// checkGolden compares got with testdata/NAME; -update rewrites it.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func sampleStatus() map[string]pluginapi.Status {
	t0 := time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)
	healthy := pluginapi.Status{
		Version:    "v1.0.0",
		StartedAt:  t0,
		Now:        t0.Add(10 * time.Minute),
		Configured: true,
		Conjur: &pluginapi.ConjurState{
			Login: "host/swarm/conjur-plugin", Account: "myorg", CredentialSource: "handoff", CredentialFingerprint: "777bef257a50b278",
			CredentialSetAt: t0.Add(time.Minute), TokenExpiresAt: t0.Add(14 * time.Minute),
			LastContact: t0.Add(9 * time.Minute), LastURL: "https://conjur-follower-1.example.com",
			LastErrorCode: "NOT_FOUND", LastError: "variable apps/shop/missing is empty or not found", LastErrorAt: t0.Add(9 * time.Minute),
			URLs: []pluginapi.URLState{
				{URL: "https://conjur-follower-1.example.com", Healthy: true},
				{URL: "https://conjur-follower-2.example.com", Failures: 3, RetryAt: t0.Add(11 * time.Minute), LastError: "connection refused"},
			},
		},
		Mapping: &pluginapi.MappingState{Path: "/etc/conjur-swarm/mapping/mapping.yml", Hash: "sha256:bbf46dfd6b06", Rules: 2,
			LoadedAt: t0, LastError: "mapping.yml:4:5: unknown field \"variabel\"", LastErrorAt: t0.Add(5 * time.Minute)},
		Counters: pluginapi.Counters{Requests: 4, Allowed: 2, Stale: 1, Denied: 1, Errors: 1, ByCode: map[errcode.Code]uint64{"DENIED": 1, "NOT_FOUND": 1}},
		Recent: []audit.Record{
			{Time: t0.Add(9*time.Minute + 30*time.Second), Secret: "web_db", Service: "web", Node: "n2", Rule: "web-db", Variable: "apps/web/db",
				Decision: "allow", Duration: 2 * time.Second, DoNotReuse: true, Stale: true, StaleAge: 4*time.Minute + 200*time.Millisecond, StaleCause: "UNAVAILABLE"},
			{Time: t0.Add(9 * time.Minute), Secret: "shop_missing", Service: "shop_web", Node: "n1", Rule: "stack-secrets", Variable: "apps/shop/missing",
				Decision: "error", Code: "NOT_FOUND", Reason: `conjur-swarm [NOT_FOUND] secret "shop_missing" (variable "apps/shop/missing", rule "stack-secrets"): variable apps/shop/missing is empty or not found`, Duration: 2 * time.Millisecond},
			{Time: t0.Add(8 * time.Minute), Secret: "plain", Service: "web", Node: "n1", Decision: "deny", Code: "DENIED",
				Reason: `conjur-swarm [DENIED] secret "plain": no rule matched`, Duration: 12 * time.Microsecond},
			{Time: t0.Add(7 * time.Minute), Secret: "db_password", Service: "web", Node: "n1", Rule: "by-label", Variable: "apps/demo/db-password",
				Decision: "allow", Duration: 1500 * time.Microsecond, DoNotReuse: true},
		},
	}
	unconfigured := pluginapi.Status{
		Version: "v1.0.0", StartedAt: t0, Now: t0.Add(3 * time.Second),
		ConfigProblem: "the Conjur settings are incomplete or invalid: CONJUR_APPLIANCE_URL is not set",
		Mapping:       &pluginapi.MappingState{Hash: "builtin", Rules: 1, LoadedAt: t0},
	}
	noCredential := pluginapi.Status{
		StartedAt: t0, Now: t0.Add(time.Minute), Configured: true,
		Conjur:  &pluginapi.ConjurState{Login: "host/swarm/conjur-plugin", Account: "myorg", CredentialSource: "none", URLs: []pluginapi.URLState{{URL: "https://conjur.example.com", Healthy: true}}},
		Mapping: &pluginapi.MappingState{Hash: "builtin", Rules: 1, LoadedAt: t0},
	}
	mappingInvalid := pluginapi.Status{
		Version: "v1.0.0", StartedAt: t0, Now: t0.Add(time.Minute), Configured: true,
		Conjur: &pluginapi.ConjurState{Login: "host/swarm/conjur-plugin", Account: "myorg", CredentialSource: "file", CredentialFingerprint: "777bef257a50b278",
			CredentialSetAt: t0, URLs: []pluginapi.URLState{{URL: "https://conjur.example.com", Healthy: true}}},
		Mapping: &pluginapi.MappingState{Path: "/etc/conjur-swarm/mapping/mapping.yml", FailClosed: true,
			LastError: "mapping file /etc/conjur-swarm/mapping/mapping.yml is invalid and no policy is in force", LastErrorAt: t0,
			Problems: []string{
				`/etc/conjur-swarm/mapping/mapping.yml:4:5: rule "by-label" has no variable: add "variable: ..."`,
				`/etc/conjur-swarm/mapping/mapping.yml:6:5: unknown key "variabel" in rule (did you mean "variable"?)`,
			}},
		Counters: pluginapi.Counters{Requests: 1, Errors: 1, ByCode: map[errcode.Code]uint64{"MAPPING_INVALID": 1}},
	}
	refused := pluginapi.HandoffState{At: t0.Add(5 * time.Minute), Code: "AUTH_REFUSED", Fingerprint: "0badf00d0badf00d",
		Err: "conjur-swarm [AUTH_REFUSED] credential handoff (fingerprint 0badf00d0badf00d): Conjur at https://conjur.example.com refused to authenticate host/swarm/conjur-plugin (HTTP 401)"}
	handoffRefused := healthy
	handoffRefused.Recent, handoffRefused.Counters = nil, pluginapi.Counters{}
	handoffRefused.LastHandoff = &refused
	noCredentialRefused := noCredential
	tlsRefused := pluginapi.HandoffState{At: t0.Add(30 * time.Second), Code: "TLS", Fingerprint: "777bef257a50b278",
		Err: "conjur-swarm [TLS] credential handoff (fingerprint 777bef257a50b278): Conjur's certificate could not be verified"}
	noCredentialRefused.LastHandoff = &tlsRefused
	perStack := healthy
	perStack.Recent = []audit.Record{
		{Time: t0.Add(9 * time.Minute), Secret: "shop_db", Service: "shop_web", Node: "n1", Rule: "stack-secrets", Identity: "shop", Variable: "apps/shop/db",
			Decision: "allow", Duration: 3 * time.Millisecond},
		{Time: t0.Add(8 * time.Minute), Secret: "blog_db", Service: "blog_web", Node: "n1", Rule: "stack-secrets", Variable: "apps/blog/db",
			Decision: "deny", Code: "DENIED", Reason: `conjur-swarm [DENIED] secret "blog_db": rule "stack-secrets" denies: identity {service_label:com.docker.stack.namespace}: service label "com.docker.stack.namespace" is missing`, Duration: 20 * time.Microsecond},
	}
	relabelled := healthy
	relabelled.Recent, relabelled.Counters = nil, pluginapi.Counters{}
	relabelled.StackMismatches = []pluginapi.StackMismatch{{Secret: "shop_db_password", Label: "blog", LastSeen: t0.Add(9 * time.Minute), Requests: 3}}
	staleValues := healthy
	staleValues.Recent = nil
	staleValues.StaleIfError = []pluginapi.StaleRuleState{
		{Rule: "web-db", Window: 10 * time.Minute, Variables: 2, Held: 2},
		{Rule: "shop-bundle", Window: 5 * time.Minute, Variables: 3, Held: 1},
		{Rule: "blog-db", Window: time.Hour},
	}
	fileNotUsed := noCredential
	fileNotUsed.Conjur = &pluginapi.ConjurState{Login: "host/swarm/conjur-plugin", Account: "myorg", CredentialSource: "file",
		CredentialFile: "[NO_CREDENTIAL] no Conjur credential yet: the credential file /run/secrets/conjur-credential does not exist; create it (readable by the plugin only) with the API key of host/swarm/conjur-plugin, or run the bootstrap agent to hand the credential over",
		URLs:           []pluginapi.URLState{{URL: "https://conjur.example.com", Healthy: true}}}
	certLogin := noCredential
	certLogin.Conjur = &pluginapi.ConjurState{Login: "host/swarm/managers/6f9nelwx7v4b6cmbomg8m05el", Account: "myorg", CredentialSource: "cert",
		CredentialSetAt: t0, URLs: []pluginapi.URLState{{URL: "https://conjur.example.com", Healthy: true}}}
	iamLogin := noCredential
	iamLogin.Conjur = &pluginapi.ConjurState{Login: "host/swarm/aws/123456789012/swarm-manager", Account: "myorg", CredentialSource: "iam",
		CredentialSetAt: t0, URLs: []pluginapi.URLState{{URL: "https://conjur.example.com", Healthy: true}}}
	perRequest := noCredential // the signing line: what Conjur's public-keys must hold
	perRequest.Conjur = &pluginapi.ConjurState{Account: "myorg", CredentialSource: "per-request", Identities: 3,
		SigningIssuer: "https://swarm.example.com/conjur-swarm", SigningKeyID: "k-3f2a9c",
		URLs: []pluginapi.URLState{{URL: "https://conjur.example.com", Healthy: true}}}
	return map[string]pluginapi.Status{"cert-login": certLogin, "iam-login": iamLogin, "per-request-identity": perRequest, "stale-values": staleValues, "credential-file-missing": fileNotUsed, "stack-mismatch": relabelled, "healthy": healthy, "per-stack-identity": perStack, "unconfigured": unconfigured, "no-credential": noCredential,
		"mapping-invalid": mappingInvalid, "handoff-refused": handoffRefused, "no-credential-handoff-refused": noCredentialRefused}
}

func TestStatusGolden(t *testing.T) {
	for name, st := range sampleStatus() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeStatus(&buf, st); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("status", name+".txt"), buf.String())
		})
	}
}

// TestStatusCommand runs `status` against a plugin socket, in both formats.
func TestStatusCommand(t *testing.T) {
	clearEnv(t)
	sock := filepath.Join(t.TempDir(), "conjur.sock")
	stop := startQuietPlugin(t, sock)
	defer stop()

	out, errOut, code := execCLI("status", "--socket", sock)
	if code != 0 || !strings.Contains(out, "Conjur    NOT CONFIGURED") || !strings.Contains(out, "No decisions yet.") {
		t.Errorf("status: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = execCLI("status", "--socket", sock, "-o", "json")
	var st pluginapi.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Configured || st.Mapping.Hash != "builtin" {
		t.Errorf("status -o json: exit %d, %v\n%s", code, err, out)
	}
	_, errOut, code = execCLI("status", "--socket", sock, "-o", "yaml")
	if code != 1 || !strings.Contains(errOut, `-o "yaml": want table or json`) {
		t.Errorf("status -o yaml: exit %d %s", code, errOut)
	}
	_, errOut, code = execCLI("status", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || !strings.Contains(errOut, "calling the plugin at") || !strings.Contains(errOut, "the plugin is not running or disabled: docker plugin ls") {
		t.Errorf("status on a missing socket: exit %d %s; want what to check (docker plugin ls)", code, errOut)
	}
}

func TestGetFlags(t *testing.T) {
	_, errOut, code := execCLI("get", "--socket", "/nonexistent.sock", "--secret-label", "novalue", "--service-label", "=x")
	for _, want := range []string{"--secret is required", `--secret-label "novalue": want KEY=VALUE`, `--service-label "=x": want KEY=VALUE`} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
}
