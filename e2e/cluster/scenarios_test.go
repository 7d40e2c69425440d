package cluster

import (
	"strings"
	"testing"
	"time"
)

// Scenario 1: installed as docs/install.md and docs/conjur.md say on every
// manager, the one global bootstrap agent hands the credential to all three
// plugins, and each plugin logged the handoff.
func TestInstallOnEveryManager(t *testing.T) {
	f := getFixture(t)
	for _, m := range f.lab.managers() {
		st := f.waitHandoff(t, m)
		if st.Version != "lab-1" {
			t.Errorf("%s: plugin version %q, want lab-1", m.name, st.Version)
		}
		lines, err := m.pluginLog(f.pluginID(m))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, l := range lines {
			found = found || (l.str("msg") == "credential handoff accepted" && l.str("login") == pluginLogin)
		}
		if !found {
			t.Errorf("%s: the plugin did not log \"credential handoff accepted\" for %s", m.name, pluginLogin)
		}
	}
	// The worker has no plugin: Swarm never calls it there.
	if out := f.lab.nodes[managers].must(t, "plugin", "ls", "-q"); out != "" {
		t.Errorf("the worker has plugins %q; the install is for managers only", out)
	}
}

// Scenario 2: a service with replicas on every node, the worker included,
// reads exact values.
func TestReplicasOnEveryNode(t *testing.T) {
	f := getFixture(t)
	m := f.lab.nodes[0]
	for _, mg := range f.lab.managers() {
		f.waitHandoff(t, mg)
	}
	a, b := f.name("every-a"), f.name("every-b")
	f.secret(t, m, pluginName, a, "apps/lab/v1")
	f.secret(t, m, pluginName, b, "apps/lab/v2")
	svc := f.name("every")
	replicas := 2 * len(f.lab.nodes)
	m.must(t, "service", "create", "-d", "--name", svc, "--replicas", itoa(replicas),
		"--secret", a, "--secret", b, "--no-resolve-image", "--network", "host", f.readerImage, a, b)
	t.Cleanup(func() { _, _ = m.docker("service", "rm", svc) })
	start := time.Now()
	perNode := f.readersOK(t, svc, replicas, map[string]string{a: "apps/lab/v1", b: "apps/lab/v2"}, nil)
	t.Logf("%d replicas read exact values in %s: %s", replicas, time.Since(start).Round(time.Millisecond), strings.Join(sortedNames(perNode), " "))
	for _, n := range f.lab.nodes {
		if perNode[n] == 0 {
			t.Errorf("no task ran on %s", n.name)
		}
	}
	record("replicas_s", round1(time.Since(start).Seconds()))
}
