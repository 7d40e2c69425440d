package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/identity"
)

// The per-stack identity mode in the lab: a second plugin on every manager,
// CONJUR_SWARM_IDENTITY=per-request, each manager with its own signing key
// in its own state directory; the lab's services (stack lab) are read as
// Conjur host swarm/stacks/lab.
const (
	idPluginName = "cyberark/conjur-id:latest"
	idIssuer     = "https://lab.swarm.test"
)

// identityPolicy is the authn-jwt service and stack lab's host, which reads
// apps/lab/* through the example policy's group.
const identityPolicy = `
- !policy
  id: conjur/authn-jwt/swarm
  body:
  - !webservice
  - !variable public-keys
  - !variable issuer
  - !variable token-app-property
  - !variable identity-path
  - !group stacks
  - !permit
    role: !group stacks
    privilege: [ read, authenticate ]
    resource: !webservice
- !policy
  id: swarm/stacks
  body:
  - !host
    id: lab
    annotations:
      authn-jwt/swarm/stack: lab
- !grant
  role: !group conjur/authn-jwt/swarm/stacks
  member: !host swarm/stacks/lab
- !grant
  role: !group apps/secret-readers
  member: !host swarm/stacks/lab
`

// installIdentityPlugins installs the per-request plugin on every manager
// (each its own state directory, so its own key) and returns its ID and
// state directory per manager. Everything is removed when the test ends.
func (f *fixture) installIdentityPlugins(t *testing.T) (ids, states map[*node]string) {
	t.Helper()
	pluginDir := filepath.Join(f.work, "plugin-id")
	if err := f.makePlugin(f.lab.nodes[0], idPluginName, pluginDir, "lab-id"); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(f.root, "docs", "examples", "mapping.yml"))
	if err != nil {
		t.Fatal(err)
	}
	mapping := strings.Replace(string(doc), "version: 1\n", "version: 1\nidentity: \"{service_label:com.docker.stack.namespace}\"\n", 1)
	ids, states = map[*node]string{}, map[*node]string{}
	for _, m := range f.lab.managers() {
		t.Cleanup(func() { _, _ = m.docker("plugin", "rm", "-f", idPluginName) })
		if m != f.lab.nodes[0] {
			m.must(t, "plugin", "create", idPluginName, pluginDir)
		}
		mapDir, state := f.dir(m.name, "id-mapping"), f.dir(m.name, "id-state")
		if err := os.WriteFile(filepath.Join(mapDir, "mapping.yml"), []byte(mapping), 0o644); err != nil {
			t.Fatal(err)
		}
		_, ca, _ := hostDirs(m)
		m.must(t, "plugin", "set", idPluginName,
			"CONJUR_APPLIANCE_URL="+f.conjurL.URL, "CONJUR_ACCOUNT="+f.conjur.Account(),
			"CONJUR_CERT_FILE=/etc/conjur-swarm/ca/conjur.pem", "CONJUR_SWARM_MAPPING_FILE=/etc/conjur-swarm/mapping/mapping.yml",
			"CONJUR_SWARM_IDENTITY=per-request", "CONJUR_SWARM_IDENTITY_ISSUER="+idIssuer, "CONJUR_AUTHN_JWT_SERVICE_ID=swarm",
			"mapping.source="+mapDir, "ca.source="+ca, "state.source="+state)
		m.must(t, "plugin", "enable", idPluginName)
		ids[m], states[m] = m.must(t, "plugin", "inspect", "-f", "{{.Id}}", idPluginName), state
	}
	return ids, states
}

// trustManagers configures authn-jwt/swarm with the keys of the given
// managers' state directories only (`conjur-swarm jwks --merge` of theirs).
func (f *fixture) trustManagers(t *testing.T, states []string) []string {
	t.Helper()
	var inputs []identity.Input
	var kids []string
	for _, dir := range states {
		store, err := identity.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, store.Current().ID)
		data, err := json.Marshal(store.JWKS())
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, identity.Input{Name: dir, Data: data})
	}
	keys, err := identity.Merge(inputs)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.conjur.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(identityPolicy)); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"public-keys": string(pk), "issuer": idIssuer, "token-app-property": "sub", "identity-path": "swarm/stacks"} {
		if err := f.conjur.SetSecret("conjur/authn-jwt/swarm/"+name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return kids
}

// idLines are the audit lines of manager m's identity plugin about service
// since a time, with the given message.
func idLines(t *testing.T, m *node, pluginID, service, msg string, since time.Time) []pluginLogLine {
	t.Helper()
	lines, err := m.pluginLog(pluginID)
	if err != nil {
		t.Fatal(err)
	}
	var out []pluginLogLine
	for _, l := range lines {
		if l.str("msg") == msg && l.str("service") == service && !l.time().Before(since) {
			out = append(out, l)
		}
	}
	return out
}

// Scenario: per-stack identity across a leader failover. Every manager's
// plugin signs with its own key. The leader's key is left out of Conjur's
// public-keys: its plugin gets AUTH_REFUSED, naming the fix. The leader is
// killed; the new leader, whose key Conjur trusts, serves the task at once:
// there is no credential to hand over. This file sorts after the other
// scenarios' files, so this scenario, which kills a manager, runs last.
func TestPerStackIdentityFailover(t *testing.T) {
	f := getFixture(t)
	ids, states := f.installIdentityPlugins(t)
	old := f.lab.waitLeader(t, nil)
	var trusted []string
	for _, m := range f.lab.managers() {
		if m != old {
			trusted = append(trusted, states[m])
		}
	}
	kids := f.trustManagers(t, trusted)
	outsider, err := identity.Open(states[old])
	if err != nil {
		t.Fatal(err)
	}
	if kids = append(kids, outsider.Current().ID); len(kids) != 3 || kids[0] == kids[1] || kids[1] == kids[2] || kids[0] == kids[2] {
		t.Fatalf("the managers' key ids are %v, want three different keys", kids)
	}

	var ops *node
	for _, m := range f.lab.managers() {
		if m != old {
			ops = m
			break
		}
	}
	f.conjur.ResetRequests() // the reads before this scenario were the other scenarios', as the plugin's one host
	sec, svc := f.name("idsec"), f.name("idsvc")
	f.secret(t, ops, idPluginName, sec, "apps/lab/v6")
	t.Cleanup(func() { _, _ = ops.docker("secret", "rm", sec) })
	start := time.Now()
	ops.must(t, "service", "create", "-d", "--name", svc, "--label", labStack, "--replicas", "1", "--secret", sec,
		"--constraint", "node.role==worker", "--restart-delay", "1s", "--no-resolve-image", "--network", "host", f.readerImage, sec)
	t.Cleanup(func() { _, _ = ops.docker("service", "rm", svc) })

	var refused string
	poll(t, old.name+"'s identity plugin refused by Conjur (its key is not in public-keys)", 2*time.Minute, func() (bool, string) {
		for _, l := range idLines(t, old, ids[old], svc, "secret not served", start) {
			if l.str("code") == "AUTH_REFUSED" {
				refused = l.str("err")
				return true, ""
			}
		}
		return false, "no AUTH_REFUSED yet"
	}, nil)
	for _, want := range []string{"identity lab", "authn-jwt/swarm", "public-keys", "conjur-swarm jwks --merge"} {
		if !strings.Contains(refused, want) {
			t.Errorf("the AUTH_REFUSED of an untrusted manager does not say %q: %s", want, refused)
		}
	}

	killedAt := time.Now()
	if err := old.kill(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := old.start(); err != nil {
			t.Errorf("restarting %s: %v", old.name, err)
			return
		}
		f.lab.waitLeader(t, nil)
	})
	lead := f.lab.waitLeader(t, old, old)
	ledAt := time.Now()
	f.readersOK(t, svc, 1, map[string]string{sec: "apps/lab/v6"}, nil)
	var served []pluginLogLine
	poll(t, lead.name+"'s identity plugin serving "+svc, time.Minute, func() (bool, string) {
		served = idLines(t, lead, ids[lead], svc, "secret served", killedAt)
		return len(served) > 0, ""
	}, nil)
	// At once: the new leader's first Get of the service was served, with
	// no refusal and no wait for a credential before it.
	if failed := idLines(t, lead, ids[lead], svc, "secret not served", killedAt); len(failed) > 0 {
		t.Errorf("the new leader %s failed %d Gets of %s before serving it: %s", lead.name, len(failed), svc, failed[0].raw)
	}
	failover := served[0].time().Sub(killedAt).Seconds()
	t.Logf("%s (untrusted key) refused; killed; %s leads (seen %.1fs after the kill) and served %s %.1fs after the kill (%.1fs after its election was seen), as identity %s",
		old.name, lead.name, ledAt.Sub(killedAt).Seconds(), svc, failover, served[0].time().Sub(ledAt).Seconds(), served[0].str("identity"))
	record("identity_failover_s", round1(failover))
	if got := served[0].str("identity"); got != "lab" {
		t.Errorf("served as identity %q, want lab", got)
	}
	roles := map[string]bool{}
	for _, r := range f.conjur.Requests() {
		if len(r.Variables) > 0 && strings.Contains(strings.Join(r.Variables, ","), "apps/lab/v6") {
			roles[r.Role] = true
		}
	}
	if len(roles) != 1 || !roles[fmt.Sprintf("%s:host:swarm/stacks/lab", f.conjur.Account())] {
		t.Errorf("Conjur saw apps/lab/v6 read as %v, want only host swarm/stacks/lab", roles)
	}
}
