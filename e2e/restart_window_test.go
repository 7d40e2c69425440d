package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// TestPluginRestartWindow measures what a plugin restart costs with the
// bootstrap agent running as docs/conjur.md deploys it: the time from
// `docker plugin enable` to the first GetSecret that is served, the
// handed-over credential having been lost with the old process. It prints
// the figures (docs/conjur.md states them); it asserts only that the
// credential comes back.
func TestPluginRestartWindow(t *testing.T) {
	s := getSuite(t)
	plugin := runID + "/conjur-restart:e2e"
	t.Cleanup(func() { removePlugin(plugin) })
	if _, err := s.installPlugin(plugin, "e2e-"+runID+"-restart", s.pluginSettings(false, s.dir("restart-identity"))); err != nil {
		t.Fatal(err)
	}
	s.bootstrapAgent(t)

	id := s.newVariable(t, []byte("restart-value-1"))
	req := pluginapi.Request{SecretName: s.name("rw"), SecretLabels: map[string]string{"conjur.variable": id}, ServiceName: "svc",
		ServiceLabels: map[string]string{e2eServiceLabel: runID}}
	served := func(pluginID string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := opsClient(pluginID).GetSecret(ctx, req)
		return err == nil && string(res.Value) == "restart-value-1"
	}
	pluginID := mustDocker(t, "plugin", "inspect", "-f", "{{.Id}}", plugin)
	poll(t, "the agent's first handoff", 60*time.Second, func() (bool, string) { return served(pluginID), "not served yet" },
		func() string { return s.pluginLog(plugin) })

	const rounds = 3
	for i := range rounds {
		mustDocker(t, "plugin", "disable", plugin)
		start := time.Now()
		mustDocker(t, "plugin", "enable", plugin)
		enabled := time.Since(start)
		// Asked every 50 ms, as a burst of task assignments would.
		deadline := time.Now().Add(60 * time.Second)
		for !served(pluginID) {
			if time.Now().After(deadline) {
				t.Fatalf("restart %d: no GetSecret served 60s after enable\n%s", i+1, s.pluginLog(plugin))
			}
			time.Sleep(50 * time.Millisecond)
		}
		first := time.Since(start)
		t.Logf("restart %d/%d: docker plugin enable returned after %s; first GetSecret served %s after enable began",
			i+1, rounds, enabled.Round(time.Millisecond), first.Round(time.Millisecond))
	}
}

// bootstrapAgent stores the plugin's credential as a swarm secret and runs
// the bootstrap agent as docs/conjur.md deploys it, both removed when the
// test ends. It returns the service's name.
func (s *suite) bootstrapAgent(t *testing.T) string {
	t.Helper()
	cred, err := s.credentialJSON()
	if err != nil {
		t.Fatal(err)
	}
	boot := s.name("boot")
	if _, err := dockerIn(bytes.NewReader(cred), "secret", "create", boot, "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = docker("secret", "rm", boot) })
	agent := s.name("agent")
	mustDocker(t, "service", "create", "-d", "--name", agent,
		"--mode", "global", "--constraint", "node.role==manager",
		"--secret", "source="+boot+",target=conjur-bootstrap",
		"--mount", "type=bind,source="+pluginSocketBase+",target="+pluginSocketBase,
		"--no-resolve-image", "--network", "host", s.agentImage)
	t.Cleanup(func() { _, _ = docker("service", "rm", agent) })
	return agent
}
