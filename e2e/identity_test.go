package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

// identityMapping is the per-stack recipe's mapping plus a deliberately
// broken rule, first, that lets any service name any variable by label: the
// plugin's own allow/deny lets stack A reach for stack B's variable, and
// Conjur, which sees stack A's host, must refuse it.
const identityMapping = `version: 1
within: [apps/]
identity: "{service_label:com.docker.stack.namespace}"
rules:
  - name: broken-any-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
  - name: stack-secrets
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
    variable: "apps/{stack}/{secret_key}"
    allow:
      service_labels: {com.docker.stack.namespace: "{stack}"}
`

// perStackConjur is a dev server holding docs/examples/per-stack with the
// example's stacks shop and blog renamed a and b, served over TLS.
func perStackConjur(t *testing.T, root, a, b string) (*conjurdev.Server, *conjurdev.Listener) {
	t.Helper()
	dev, err := conjurdev.New(conjurdev.Options{Logger: zap.NewNop(), Authenticators: []string{"authn", "authn-jwt/swarm"}})
	if err != nil {
		t.Fatal(err)
	}
	rename := strings.NewReplacer("shop", a, "blog", b)
	dir := t.TempDir()
	for _, f := range []string{"conjur-policy.yml", "values.yml"} {
		data, err := os.ReadFile(filepath.Join(root, "docs", "examples", "per-stack", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(rename.Replace(string(data))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dev.LoadDemo(dir); err != nil {
		t.Fatal(err)
	}
	l, err := dev.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dev, l
}

// trustManager does what the operator does with a new manager: print its
// JWKS from the plugin's state directory (`conjur-swarm jwks`), merge it into
// the value of authn-jwt/swarm's public-keys (`conjur-swarm jwks --merge`)
// and set that and the issuer in Conjur.
func trustManager(t *testing.T, bin string, dev *conjurdev.Server, stateDir, issuer string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jwks, err := run(ctx, nil, bin, "jwks", "--state-dir", stateDir)
	if err != nil {
		t.Fatalf("conjur-swarm jwks: %v", err)
	}
	file := filepath.Join(t.TempDir(), "m1.json")
	if err := os.WriteFile(file, []byte(jwks), 0o644); err != nil {
		t.Fatal(err)
	}
	pk, err := run(ctx, nil, bin, "jwks", "--merge", file)
	if err != nil {
		t.Fatalf("conjur-swarm jwks --merge: %v", err)
	}
	for name, v := range map[string]string{"public-keys": pk, "issuer": issuer} {
		if err := dev.SetSecret("conjur/authn-jwt/swarm/"+name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
}

// Scenario: per-stack identity. A plugin in CONJUR_SWARM_IDENTITY=per-request
// reads each stack's secrets as that stack's own Conjur host, through
// authn-jwt with JWTs it signs with its own key; no API key, credential file
// or bootstrap secret exists. A mapping rule that wrongly lets stack A name
// stack B's variable is refused by Conjur (FORBIDDEN): the defence in depth
// is Conjur's, not only the plugin's deny.
func TestPerStackIdentity(t *testing.T) {
	s := getSuite(t)
	a, b := s.name("ida"), s.name("idb")
	dev, l := perStackConjur(t, s.root, a, b)

	caDir, mapDir := s.dir(a+"-ca"), s.dir(a+"-mapping")
	stateDir := s.dir(a + "-state")
	if err := os.WriteFile(filepath.Join(caDir, "conjur.pem"), l.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mapDir, "mapping.yml"), []byte(identityMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	const issuer = "https://swarm.e2e.test"
	plugin := runID + "/conjur-id:e2e"
	t.Cleanup(func() { removePlugin(plugin) })
	pluginID, err := s.installPlugin(plugin, "e2e-id-"+runID, []string{
		"CONJUR_APPLIANCE_URL=" + l.URL,
		"CONJUR_ACCOUNT=" + dev.Account(),
		"CONJUR_CERT_FILE=" + pluginCAFile,
		"CONJUR_SWARM_MAPPING_FILE=" + pluginMappingFile,
		"CONJUR_SWARM_IDENTITY=per-request",
		"CONJUR_SWARM_IDENTITY_ISSUER=" + issuer,
		"CONJUR_AUTHN_JWT_SERVICE_ID=swarm",
		"CONJUR_SWARM_LOG_LEVEL=debug",
		"mapping.source=" + mapDir,
		"ca.source=" + caDir,
		"state.source=" + stateDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	trustManager(t, s.bin, dev, stateDir, issuer)
	dev.ResetRequests()

	for _, st := range []string{a, b} {
		compose := readerStack(s.readerImage, "app", "db-password", "  db-password:\n    driver: "+plugin)
		if st == a { // stack A also reaches for B's variable through the broken rule
			compose = strings.Replace(compose, "services:\n", fmt.Sprintf(`services:
  thief:
    image: %[1]s
    command: ["loot"]
    networks: [hostnet]
    deploy:
      restart_policy: {condition: none}
    secrets: [loot]
`, s.readerImage), 1)
			compose = strings.Replace(compose, "secrets:\n  db-password:", fmt.Sprintf(`secrets:
  loot:
    driver: %[1]s
    labels:
      conjur.variable: apps/%[2]s/db-password
  db-password:`, plugin, b), 1)
		}
		deployStack(t, st, compose)
	}
	for st, want := range map[string]string{a: a + "-db-password-0001", b: b + "-db-password-0001"} {
		taskID, f := only(waitReaders(t, st+"_app", 1, nil))
		checkValues(t, taskID, f, map[string][]byte{"db-password": []byte(want)})
	}
	msg := waitTaskFailure(t, a+"_thief")
	t.Logf("stack %s's thief: %s", a, msg)
	line := s.waitPluginLog(t, pluginID, `"secret":"`+a+`_loot"`, `"rule":"broken-any-label"`, "FORBIDDEN")
	if line != "" && !strings.Contains(line, a) {
		t.Errorf("the FORBIDDEN line does not name stack %s's identity: %s", a, line)
	}

	// Conjur saw each stack as its own host, and nothing else.
	roles := map[string]bool{}
	for _, r := range dev.Requests() {
		if len(r.Variables) > 0 {
			roles[r.Role] = true
		}
	}
	wantRoles := map[string]bool{"dev:host:swarm/stacks/" + a: true, "dev:host:swarm/stacks/" + b: true}
	if len(roles) != 2 || !roles["dev:host:swarm/stacks/"+a] || !roles["dev:host:swarm/stacks/"+b] {
		t.Errorf("Conjur saw the reads made as %v, want %v", roles, wantRoles)
	}
	var st struct {
		Conjur struct {
			CredentialSource string `json:"credential_source"`
			Login            string `json:"login"`
		} `json:"conjur"`
	}
	if err := json.Unmarshal([]byte(s.status(t, pluginID)), &st); err != nil || st.Conjur.CredentialSource != "per-request" || st.Conjur.Login != "" {
		t.Errorf("the status shows credential source %q and login %q (%v), want per-request and none", st.Conjur.CredentialSource, st.Conjur.Login, err)
	}
	if dlog == nil {
		return
	}
	if lines, err := dlog.pluginLines(pluginID); err == nil {
		for _, ln := range lines {
			if strings.Contains(ln, "eyJhbGciOi") { // a JWT's header, base64 of {"alg":
				t.Fatalf("a JWT is in the plugin's log: %.120s...", ln)
			}
		}
	}
}
