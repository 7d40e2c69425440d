package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
	"github.com/cyberark/conjur-swarm/internal/rollout"
)

// servicesUsing runs `conjur-swarm services-using VARIABLE -o json` on this
// manager against the suite's mapping file and plugin.
func (s *suite) servicesUsing(t *testing.T, variable string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := run(ctx, nil, s.bin, "services-using", variable, "-o", "json",
		"-f", filepath.Join(s.mapDir, "mapping.yml"), "--driver", s.plugin)
	if err != nil {
		t.Fatalf("conjur-swarm services-using: %v", err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("services-using -o json: %v\n%s", err, out)
	}
	return rows
}

// services-using on the real swarm lists exactly the services whose driver
// secrets resolve to the variable, through the mapping as the plugin would.
func TestServicesUsing(t *testing.T) {
	s := getSuite(t)
	id := s.newVariable(t, []byte("services-using-value"))
	other := s.newVariable(t, []byte("other-value"))
	a, b, c := s.name("su"), s.name("su"), s.name("su")
	s.secret(t, s.plugin, a, "conjur.variable="+id)
	s.secret(t, s.plugin, b, "conjur.variable="+id)
	s.secret(t, s.plugin, c, "conjur.variable="+other)
	one, two, three := s.name("susvc"), s.name("susvc"), s.name("susvc")
	s.service(t, one, []string{a}, "--replicas", "0")
	s.service(t, two, []string{b, c}, "--replicas", "0")
	s.service(t, three, []string{c}, "--replicas", "0")

	want := []map[string]any{
		{"service": one, "secret": a, "rule": "e2e-by-label"},
		{"service": two, "secret": b, "rule": "e2e-by-label"},
	}
	if diff := cmp.Diff(want, s.servicesUsing(t, id)); diff != "" {
		t.Errorf("services-using %s (-want +got):\n%s", id, diff)
	}
	want = []map[string]any{
		{"service": two, "secret": c, "rule": "e2e-by-label"},
		{"service": three, "secret": c, "rule": "e2e-by-label"},
	}
	if diff := cmp.Diff(want, s.servicesUsing(t, other)); diff != "" {
		t.Errorf("services-using %s (-want +got):\n%s", other, diff)
	}
}

const rolloutLogin = "host/swarm/conjur-rollout"

var rolloutPolicyOnce sync.Once

// rolloutIdentity loads docs/examples/rollout-policy.yml once per run and
// grants the agent's group read (only) on the given variables. It returns
// the agent's credential JSON.
func (s *suite) rolloutIdentity(t *testing.T, ids ...string) []byte {
	t.Helper()
	var loadErr error
	rolloutPolicyOnce.Do(func() {
		var body []byte
		if body, loadErr = os.ReadFile(filepath.Join(s.root, "docs", "examples", "rollout-policy.yml")); loadErr == nil {
			_, loadErr = s.dev.LoadConjurPolicy(conjurdev.ModePost, "root", body)
		}
	})
	if loadErr != nil {
		t.Fatalf("loading docs/examples/rollout-policy.yml: %v", loadErr)
	}
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "- !permit\n  role: !group /swarm/version-readers\n  privilege: read\n  resource: !variable %s\n", strings.TrimPrefix(id, "apps/"))
	}
	if _, err := s.dev.LoadConjurPolicy(conjurdev.ModePost, "apps", []byte(b.String())); err != nil {
		t.Fatalf("granting read on %v: %v", ids, err)
	}
	key, err := s.dev.APIKey("host:swarm/conjur-rollout")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := json.Marshal(map[string]string{"login": rolloutLogin, "api_key": key})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// forceUpdates is a service's TaskTemplate.ForceUpdate counter.
func forceUpdates(t *testing.T, service string) int {
	t.Helper()
	out := mustDocker(t, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ForceUpdate}}", service)
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("ForceUpdate of %s: %q", service, out)
	}
	return n
}

// rolloutStatus runs `rollout-agent status -o json` inside the agent's
// container; ok is false while no container answers yet.
func rolloutStatus(agent string) (rollout.Status, string, bool) {
	cid, err := docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="+agent)
	if err != nil || cid == "" {
		return rollout.Status{}, "", false
	}
	out, err := docker("exec", strings.Fields(cid)[0], "/conjur-swarm", "rollout-agent", "status", "-o", "json")
	if err != nil {
		return rollout.Status{}, err.Error(), false
	}
	var st rollout.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return rollout.Status{}, out, false
	}
	return st, out, true
}

// valuesOf returns the value each running task of service read, for tasks
// not in skip; ok when want such tasks have read theirs.
func valuesOf(service string, secret string, skip map[string]bool) (map[string]string, bool) {
	tasks, err := serviceTasks(service)
	if err != nil {
		return nil, false
	}
	got := map[string]string{}
	running := 0
	for _, tk := range tasks {
		if !tk.running() {
			continue
		}
		running++
		if skip[tk.ID] {
			continue
		}
		f, err := taskFrames(tk.ID)
		if err != nil || !f.ready {
			continue
		}
		got[tk.ID] = string(f.values[secret])
	}
	return got, running == len(got)
}

// Issue 14: the rollout agent, as a swarm service with its own identity
// (read, no execute), rolls the opted-in service when the variable rotates;
// the unlabelled service using the same secret is untouched; a second
// rotation during the rollout waits for min-gap; log and status hold no value.
func TestRolloutAgent(t *testing.T) {
	s := getSuite(t)
	v1, v2, v3 := "rollout-v1-"+hex.EncodeToString(randomBytes(t, 8)), "rollout-v2-"+hex.EncodeToString(randomBytes(t, 8)), "rollout-v3-"+hex.EncodeToString(randomBytes(t, 8))
	id := s.newVariable(t, []byte(v1))
	cred := s.rolloutIdentity(t, id)

	// The agent's identity sees versions and cannot fetch the value.
	var credMap map[string]string
	if err := json.Unmarshal(cred, &credMap); err != nil {
		t.Fatal(err)
	}
	cl, err := conjur.New(conjur.Config{ApplianceURLs: []string{s.listener.URL}, Account: s.dev.Account(),
		Login: rolloutLogin, APIKey: redact.String(credMap["api_key"]), CACertPEM: s.listener.CAPEM}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Get(ctx, conjur.Ref{ID: id}); conjur.CodeOf(err) != errcode.Forbidden {
		t.Fatalf("the agent's identity fetching %s: %v, want FORBIDDEN (read without execute)", id, err)
	}
	if vs, err := cl.Versions(ctx, s.dev.Account(), []string{id}); err != nil || vs[id] != 1 {
		t.Fatalf("the agent's identity reading the version of %s: %v, %v; want version 1", id, vs, err)
	}

	sec := s.name("rsec")
	s.secret(t, s.plugin, sec, "conjur.variable="+id)
	rolled, untouched := s.name("rsvc"), s.name("rsvc")
	s.service(t, rolled, []string{sec}, "--replicas", "2", "--label", "conjur.rollout=true",
		"--update-parallelism", "1", "--update-delay", "0s", "--update-monitor", "1s", "--restart-condition", "none")
	s.service(t, untouched, []string{sec}, "--restart-condition", "none")
	for _, svc := range []string{rolled, untouched} {
		for tid, f := range waitReaders(t, svc, map[string]int{rolled: 2, untouched: 1}[svc], nil) {
			checkValues(t, tid, f, map[string][]byte{sec: []byte(v1)})
		}
	}
	untouchedTasks := taskIDs(t, untouched)

	credSecret := s.name("rcred")
	if _, err := dockerIn(bytes.NewReader(cred), "secret", "create", credSecret, "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = docker("secret", "rm", credSecret) })
	const minGap = 20 * time.Second
	agent := s.name("rollout")
	mustDocker(t, "service", "create", "-d", "--name", agent, "--replicas", "1", "--constraint", "node.role==manager",
		"--secret", "source="+credSecret+",target=conjur-rollout",
		"--mount", "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock,readonly",
		"--mount", "type=bind,source="+s.mapDir+",target=/etc/conjur-swarm/mapping,readonly",
		"--mount", "type=bind,source="+s.caDir+",target=/etc/conjur-swarm/ca,readonly",
		"-e", "CONJUR_APPLIANCE_URL="+s.listener.URL, "-e", "CONJUR_ACCOUNT="+s.dev.Account(),
		"-e", "CONJUR_AUTHN_LOGIN="+rolloutLogin, "-e", "CONJUR_CERT_FILE=/etc/conjur-swarm/ca/conjur.pem",
		"-e", "CONJUR_SWARM_CREDENTIAL_FILE=/run/secrets/conjur-rollout",
		"-e", "CONJUR_SWARM_MAPPING_FILE=/etc/conjur-swarm/mapping/mapping.yml",
		"--no-resolve-image", "--network", "host", "--entrypoint", "/conjur-swarm rollout-agent", s.agentImage,
		"--interval", "1s", "--min-gap", minGap.String(), "--driver", s.plugin, "--log-level", "debug")
	t.Cleanup(func() { _, _ = docker("service", "rm", agent) })

	// Primed: the agent watches the labelled service at version 1.
	poll(t, "the rollout agent watching "+rolled, waitTimeout, func() (bool, string) {
		st, raw, ok := rolloutStatus(agent)
		if !ok || !st.Primed {
			return false, raw
		}
		for _, svc := range st.Services {
			if svc.Name == rolled && len(svc.Variables) == 1 && svc.Variables[0].Version == 1 {
				return true, ""
			}
		}
		return false, raw
	}, func() string { return agentLogs(agent) })
	for _, svc := range []string{rolled, untouched} {
		if n := forceUpdates(t, svc); n != 0 {
			t.Fatalf("the agent's first pass updated %s (ForceUpdate %d)", svc, n)
		}
	}

	// Rotate; the agent rolls the labelled service.
	old := taskIDs(t, rolled)
	rotated := time.Now()
	if err := s.dev.SetSecret(id, []byte(v2)); err != nil {
		t.Fatal(err)
	}
	poll(t, "the rollout of "+rolled, waitTimeout, func() (bool, string) {
		n := forceUpdates(t, rolled)
		return n >= 1, fmt.Sprintf("ForceUpdate %d", n)
	}, func() string { return agentLogs(agent) })
	startedAfter := time.Since(rotated)

	// A second rotation during the rollout.
	if err := s.dev.SetSecret(id, []byte(v3)); err != nil {
		t.Fatal(err)
	}
	secondRotation := time.Now()
	var lastNew time.Duration
	waits := map[string]bool{} // what the status said the due second rollout waits for
	noteWait := func() {
		if st, _, ok := rolloutStatus(agent); ok {
			for _, svc := range st.Services {
				if svc.Name == rolled && svc.Pending != "" {
					waits[strings.SplitN(svc.Pending, ":", 2)[0]] = true
				}
			}
		}
	}
	poll(t, "every task of "+rolled+" replaced and holding a new value", waitTimeout, func() (bool, string) {
		noteWait()
		got, all := valuesOf(rolled, sec, old)
		if !all || len(got) != 2 {
			return false, fmt.Sprintf("%d new running tasks read", len(got))
		}
		for tid, v := range got {
			if v != v2 && v != v3 {
				t.Fatalf("task %s of %s read %d bytes that are neither the second nor the third value", tid, rolled, len(v))
			}
		}
		lastNew = time.Since(rotated)
		return true, ""
	}, func() string { return describeService(rolled) + agentLogs(agent) })
	t.Logf("rotation -> rollout started: %s; rotation -> last task running with a new value: %s (interval 1s, 2 replicas, parallelism 1, monitor 1s)",
		startedAfter.Round(10*time.Millisecond), lastNew.Round(10*time.Millisecond))

	// The second rotation rolls once more, not before min-gap after the first.
	// How long min-gap still has to run once the first rollout is done: only
	// a window of several status polls can be required to show the wait (on a
	// loaded machine the first rollout may outlast min-gap, and the status
	// then only ever says "updating").
	minGapWindow := time.Until(rotated.Add(startedAfter).Add(minGap))
	poll(t, "the second rollout of "+rolled, waitTimeout, func() (bool, string) {
		noteWait()
		if n := forceUpdates(t, rolled); n != 2 {
			if n > 2 {
				t.Fatalf("%s was rolled %d times, want 2", rolled, n)
			}
			return false, fmt.Sprintf("ForceUpdate %d", n)
		}
		return true, ""
	}, func() string { return agentLogs(agent) })
	ats := rolloutTimes(t, agent, rolled)
	if len(ats) != 2 {
		t.Fatalf("%d rollout lines for %s in the agent's log, want 2:\n%s", len(ats), rolled, agentLogs(agent))
	}
	if gap := ats[1].Sub(ats[0]); gap < minGap {
		t.Errorf("second rollout %s after the first, want at least min-gap %s", gap, minGap)
	}
	switch {
	case !waits["min-gap"] && minGapWindow >= 5*time.Second:
		t.Errorf("the status never showed the second rollout waiting for min-gap (%s of it left after the first rollout); it showed %v",
			minGapWindow.Round(10*time.Millisecond), waits)
	case !waits["min-gap"]:
		t.Logf("min-gap had %s left after the first rollout, too short to require the status to show it; it showed %v",
			minGapWindow.Round(10*time.Millisecond), waits)
	}
	old = taskIDs(t, rolled)
	poll(t, "every task of "+rolled+" holding the third value", waitTimeout, func() (bool, string) {
		got, all := valuesOf(rolled, sec, nil)
		if !all || len(got) != 2 {
			return false, fmt.Sprintf("%d running tasks read", len(got))
		}
		for _, v := range got {
			if v != v3 {
				return false, "a task still holds an older value"
			}
		}
		return true, ""
	}, func() string { return describeService(rolled) })
	t.Logf("second rotation -> every task running with it: %s (includes min-gap %s)", time.Since(secondRotation).Round(10*time.Millisecond), minGap)

	// The unlabelled service was never touched.
	if n := forceUpdates(t, untouched); n != 0 {
		t.Errorf("the unlabelled service %s was updated (ForceUpdate %d)", untouched, n)
	}
	if diff := cmp.Diff(untouchedTasks, taskIDs(t, untouched)); diff != "" {
		t.Errorf("the unlabelled service's tasks changed (-before +after):\n%s", diff)
	}

	// Neither the agent's log nor its status holds a value or its key.
	_, raw, ok := rolloutStatus(agent)
	if !ok {
		t.Fatalf("rollout-agent status: %s", raw)
	}
	logs := agentLogs(agent)
	for _, leak := range []string{v1, v2, v3, credMap["api_key"]} {
		if strings.Contains(logs, leak) || strings.Contains(raw, leak) {
			t.Errorf("the agent's log or status holds a value or its API key")
		}
	}
	if !strings.Contains(logs, `"msg":"rollout"`) || !strings.Contains(logs, id+" 2->3") {
		t.Errorf("the agent's log has no audit line for %s 2->3:\n%s", id, logs)
	}
}

// agentLogs is the rollout agent's output so far (zap writes to stderr,
// which `docker service logs` passes on as its own stderr).
func agentLogs(agent string) string {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "service", "logs", "--raw", agent).CombinedOutput()
	if err != nil {
		return "docker service logs: " + err.Error() + "\n" + string(out)
	}
	return "\nrollout agent log:\n" + string(out)
}

// rolloutTimes are the times of the agent's audit lines for service.
func rolloutTimes(t *testing.T, agent, service string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, line := range strings.Split(agentLogs(agent), "\n") {
		var l struct {
			TS      string `json:"ts"`
			Msg     string `json:"msg"`
			Service string `json:"service"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "rollout" || l.Service != service {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", l.TS)
		if err != nil {
			t.Fatalf("agent log time %q: %v", l.TS, err)
		}
		out = append(out, ts)
	}
	return out
}
