package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
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
// authn-cert with this engine's own swarm node certificate (its swarm
// mount set to the engine's certificate directory, read-only), as the host pinned to this node's id; the
// Conjur side trusts the swarm root CA as `docker swarm ca` prints it. No
// API key, credential file, JWT or bootstrap secret exists, and a stack's
// service gets its secret.
func TestCertLoginOnSwarm(t *testing.T) {
	s := getSuite(t)
	stack := s.name("cert")
	nodeID := strings.TrimSpace(mustDocker(t, "info", "-f", "{{.Swarm.NodeID}}"))
	rootCA := mustDocker(t, "swarm", "ca")
	host := "swarm/managers/" + nodeID

	dev, l := certConjur(t, nodeID, host, rootCA, map[string]string{"apps/" + stack + "/db-password": stack + "-from-cert-login"}, "execute")
	caDir, mapDir := s.dir(stack+"-ca"), s.dir(stack+"-mapping")
	if err := os.WriteFile(filepath.Join(caDir, "conjur.pem"), l.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mapDir, "mapping.yml"), []byte(certMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	plugin := runID + "/conjur-cert:e2e"
	t.Cleanup(func() { removePlugin(plugin) })
	pluginID, err := s.installPlugin(plugin, "e2e-cert-"+runID, []string{
		"CONJUR_APPLIANCE_URL=" + l.URL,
		"CONJUR_ACCOUNT=" + dev.Account(),
		"CONJUR_CERT_FILE=" + pluginCAFile,
		"CONJUR_SWARM_MAPPING_FILE=" + pluginMappingFile,
		"CONJUR_AUTHN_TYPE=cert",
		"CONJUR_SERVICE_ID=swarm",
		"CONJUR_AUTHN_LOGIN=host/" + host,
		"mapping.source=" + mapDir,
		"ca.source=" + caDir,
		"swarm.source=" + swarmCertDir(t),
	})
	if err != nil {
		t.Fatal(err)
	}

	deployStack(t, stack, readerStack(s.readerImage, "app", "db-password", "  db-password:\n    driver: "+plugin))
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

// certConjur is a dev server over TLS whose authn-cert/swarm trusts
// rootCA, with host pinned to nodeID (authn-cert/swarm/cn) and permitted to
// authenticate, holding values (id -> value) on which host has read and,
// with privilege "execute", execute.
func certConjur(t *testing.T, nodeID, host, rootCA string, values map[string]string, privilege string) (*conjurdev.Server, *conjurdev.Listener) {
	t.Helper()
	dev, err := conjurdev.New(conjurdev.Options{Logger: zap.NewNop(), Authenticators: []string{"authn", "authn-cert/swarm"}})
	if err != nil {
		t.Fatal(err)
	}
	privileges := "[read]"
	if privilege == "execute" {
		privileges = "[read, execute]"
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
`, host, nodeID)
	for id := range values {
		policy += fmt.Sprintf("- !variable %[1]s\n- !permit\n  role: !host %[2]s\n  privileges: %[3]s\n  resource: !variable %[1]s\n", id, host, privileges)
	}
	if _, err := dev.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(policy)); err != nil {
		t.Fatal(err)
	}
	values["conjur/authn-cert/swarm/ca-cert"] = rootCA
	for id, v := range values {
		if err := dev.SetSecret(id, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := dev.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dev, l
}

// Scenario: the rollout agent without a credential. Its replica logs in to
// authn-cert with the node certificate of the manager it runs on (the
// engine's certificate directory mounted read-only), as the host that
// Swarm's template {{.Node.ID}} names, and watches an opted-in service's
// variable version; no secret holds a credential for it.
func TestRolloutAgentCertLogin(t *testing.T) {
	s := getSuite(t)
	nodeID := strings.TrimSpace(mustDocker(t, "info", "-f", "{{.Swarm.NodeID}}"))
	host := "swarm/rollout/" + nodeID
	id := s.newVariable(t, []byte("cert-rollout-v1"))
	dev, l := certConjur(t, nodeID, host, mustDocker(t, "swarm", "ca"), map[string]string{id: "cert-rollout-v1"}, "read")
	caDir := s.dir(s.name("rca"))
	if err := os.WriteFile(filepath.Join(caDir, "conjur.pem"), l.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	sec, watched := s.name("rcsec"), s.name("rcsvc")
	s.secret(t, s.plugin, sec, "conjur.variable="+id)
	s.service(t, watched, []string{sec}, "--label", "conjur.rollout=true", "--restart-condition", "none")
	agent := s.name("rcagent")
	mustDocker(t, "service", "create", "-d", "--name", agent, "--replicas", "1", "--constraint", "node.role==manager",
		"--mount", "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock,readonly",
		"--mount", "type=bind,source="+s.mapDir+",target=/etc/conjur-swarm/mapping,readonly",
		"--mount", "type=bind,source="+caDir+",target=/etc/conjur-swarm/ca,readonly",
		"--mount", "type=bind,source="+swarmCertDir(t)+",target=/etc/conjur-swarm/swarm,readonly",
		"--mount", "type=tmpfs,target=/run", // the status socket's directory: no secret creates /run here
		"-e", "CONJUR_APPLIANCE_URL="+l.URL, "-e", "CONJUR_ACCOUNT="+dev.Account(),
		"-e", "CONJUR_AUTHN_TYPE=cert", "-e", "CONJUR_SERVICE_ID=swarm",
		"-e", "CONJUR_AUTHN_LOGIN=host/swarm/rollout/{{.Node.ID}}", "-e", "CONJUR_CERT_FILE=/etc/conjur-swarm/ca/conjur.pem",
		"-e", "CONJUR_SWARM_MAPPING_FILE=/etc/conjur-swarm/mapping/mapping.yml",
		"--no-resolve-image", "--network", "host", "--entrypoint", "/conjur-swarm rollout-agent", s.agentImage,
		"--interval", "1s", "--driver", s.plugin, "--log-level", "debug")
	t.Cleanup(func() { _, _ = docker("service", "rm", agent) })

	poll(t, "the cert-login rollout agent watching "+watched, waitTimeout, func() (bool, string) {
		st, raw, ok := rolloutStatus(agent)
		if !ok || !st.Primed {
			return false, raw
		}
		for _, svc := range st.Services {
			if svc.Name == watched && len(svc.Variables) == 1 && svc.Variables[0].Version == 1 {
				return true, ""
			}
		}
		return false, raw
	}, func() string { return agentLogs(agent) })
	seen := false
	for _, r := range dev.Requests() {
		seen = seen || r.Role == dev.Account()+":host:"+host
	}
	if !seen {
		t.Errorf("Conjur saw no request made as host %s", host)
	}
}

// swarmCertDir is this engine's swarm certificate directory, as an operator
// finds it: under the engine's data-root.
func swarmCertDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(strings.TrimSpace(mustDocker(t, "info", "-f", "{{.DockerRootDir}}")), "swarm", "certificates")
}

// Scenario: an autolocked swarm. `docker swarm update --autolock=true`
// makes the engine rewrite its node key encrypted (observed on Docker
// 20.10: the PEM block becomes "ENCRYPTED PRIVATE KEY"), so authn-cert
// cannot use it: each login is CREDENTIAL_REJECTED naming the fix, without
// quoting the file. Autolock off again, the engine writes the key in clear
// and the next login succeeds, without a new client (the files are read at
// each login). Cleanup turns autolock off whatever happens.
func TestCertLoginOnAnAutolockedSwarm(t *testing.T) {
	getSuite(t)
	nodeID := strings.TrimSpace(mustDocker(t, "info", "-f", "{{.Swarm.NodeID}}"))
	host := "swarm/managers/" + nodeID
	dev, l := certConjur(t, nodeID, host, mustDocker(t, "swarm", "ca"), map[string]string{"apps/locked/v": "autolock-v1"}, "execute")
	dir := swarmCertDir(t)
	keyFile := filepath.Join(dir, "swarm-node.key")
	c, err := conjur.New(conjur.Config{
		ApplianceURLs: []string{l.URL}, Account: dev.Account(), Login: "host/" + host, CACertPEM: l.CAPEM,
		AuthnType: conjur.AuthnCert, ServiceID: "swarm",
		ClientCertFile: filepath.Join(dir, "swarm-node.crt"), ClientKeyFile: keyFile,
		FetchTimeout: 10 * time.Second,
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Cleanup(func() { _, _ = docker("swarm", "update", "--autolock=false") })
	mustDocker(t, "swarm", "update", "--autolock=true") // prints the unlock key: not kept
	waitKeyBlock(t, keyFile, "ENCRYPTED PRIVATE KEY")
	_, err = c.Get(t.Context(), conjur.Ref{ID: "apps/locked/v"})
	if conjur.CodeOf(err) != errcode.CredentialRejected || !strings.Contains(err.Error(), "--autolock=false") || strings.Contains(err.Error(), "BEGIN") || strings.Contains(err.Error(), "raft-dek") {
		t.Fatalf("a login with the autolocked node key: %v, want CREDENTIAL_REJECTED naming --autolock=false and quoting nothing", err)
	}

	mustDocker(t, "swarm", "update", "--autolock=false")
	waitKeyBlock(t, keyFile, "PRIVATE KEY")
	v, err := c.Get(t.Context(), conjur.Ref{ID: "apps/locked/v"})
	if err != nil || string(v.Data.Reveal()) != "autolock-v1" {
		t.Fatalf("after autolock was turned off: %v, want the value without a restart", err)
	}
}

// waitKeyBlock waits until the PEM block of the key file is of type
// blockType (the engine rewrites it after a swarm update).
func waitKeyBlock(t *testing.T, keyFile, blockType string) {
	t.Helper()
	poll(t, fmt.Sprintf("the engine's node key %s as a %q block", keyFile, blockType), 30*time.Second, func() (bool, string) {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatalf("the engine's node key: %v", err)
		}
		p, _ := pem.Decode(b)
		if p == nil {
			return false, "no PEM block"
		}
		return p.Type == blockType, "a " + p.Type + " block"
	}, nil)
}
