package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

// certMapping serves a stack's own variables apps/<stack>/<key>.
const certMapping = `version: 1
within: [apps/]
rules:
  - name: stack-secrets
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
    variable: "apps/{stack}/{secret_key}"
    allow:
      service_labels: {com.docker.stack.namespace: "{stack}"}
`

// Scenario: no secret zero. The managed plugin logs in to Conjur's
// authn-cert with this engine's own swarm node certificate (its default
// swarm mount, read-only), as the host pinned to this node's id; the
// Conjur side trusts the swarm root CA as `docker swarm ca` prints it. No
// API key, credential file, JWT or bootstrap secret exists, and a stack's
// service gets its secret.
func TestCertLoginOnSwarm(t *testing.T) {
	s := getSuite(t)
	stack := s.name("cert")
	nodeID := strings.TrimSpace(mustDocker(t, "info", "-f", "{{.Swarm.NodeID}}"))
	rootCA := mustDocker(t, "swarm", "ca")
	host := "swarm/managers/" + nodeID

	dev, err := conjurdev.New(conjurdev.Options{Logger: zap.NewNop(), Authenticators: []string{"authn", "authn-cert/swarm"}})
	if err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(`- !webservice conjur/authn-cert/swarm
- !variable conjur/authn-cert/swarm/ca-cert
- !host
  id: %[1]s
  annotations:
    authn-cert/swarm/cn: %[2]s
- !permit
  role: !host %[1]s
  privilege: authenticate
  resource: !webservice conjur/authn-cert/swarm
- !variable apps/%[3]s/db-password
- !permit
  role: !host %[1]s
  privileges: [read, execute]
  resource: !variable apps/%[3]s/db-password
`, host, nodeID, stack)
	if _, err := dev.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(policy)); err != nil {
		t.Fatal(err)
	}
	for id, v := range map[string]string{"conjur/authn-cert/swarm/ca-cert": rootCA, "apps/" + stack + "/db-password": stack + "-from-cert-login"} {
		if err := dev.SetSecret(id, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := dev.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	caDir, mapDir := s.dir(stack+"-ca"), s.dir(stack+"-mapping")
	if err := os.WriteFile(filepath.Join(caDir, "conjur.pem"), l.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mapDir, "mapping.yml"), []byte(certMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	plugin := runID + "/conjur-cert:e2e"
	t.Cleanup(func() { removePlugin(plugin) })
	pluginID, err := s.installPlugin(plugin, "e2e-cert-"+runID, []string{ // the swarm mount keeps its default source
		"CONJUR_APPLIANCE_URL=" + l.URL,
		"CONJUR_ACCOUNT=" + dev.Account(),
		"CONJUR_CERT_FILE=" + pluginCAFile,
		"CONJUR_SWARM_MAPPING_FILE=" + pluginMappingFile,
		"CONJUR_AUTHN_TYPE=cert",
		"CONJUR_SERVICE_ID=swarm",
		"CONJUR_AUTHN_LOGIN=host/" + host,
		"mapping.source=" + mapDir,
		"ca.source=" + caDir,
	})
	if err != nil {
		t.Fatal(err)
	}

	deployStack(t, stack, fmt.Sprintf(`version: "3.8"
services:
  app:
    image: %[1]s
    command: ["db-password"]
    networks: [hostnet]
    deploy:
      restart_policy: {condition: none}
    secrets: [db-password]
secrets:
  db-password:
    driver: %[2]s
networks:
  hostnet:
    external: true
    name: host
`, s.readerImage, plugin))
	taskID, f := only(waitReaders(t, stack+"_app", 1, nil))
	checkValues(t, taskID, f, map[string][]byte{"db-password": []byte(stack + "-from-cert-login")})

	roles := map[string]bool{}
	for _, r := range dev.Requests() {
		if len(r.Variables) > 0 {
			roles[r.Role] = true
		}
	}
	if want := dev.Account() + ":host:" + host; len(roles) != 1 || !roles[want] {
		t.Errorf("Conjur saw the reads made as %v, want only %s", roles, want)
	}
	var st struct {
		Conjur struct {
			CredentialSource string `json:"credential_source"`
			Login            string `json:"login"`
		} `json:"conjur"`
	}
	if err := json.Unmarshal([]byte(s.status(t, pluginID)), &st); err != nil || st.Conjur.CredentialSource != "cert" || st.Conjur.Login != "host/"+host {
		t.Errorf("the status shows credential source %q and login %q (%v), want cert and host/%s", st.Conjur.CredentialSource, st.Conjur.Login, err, host)
	}
}
