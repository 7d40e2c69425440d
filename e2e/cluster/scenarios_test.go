package cluster

import (
	"fmt"
	"path/filepath"
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
	m.must(t, "service", "create", "-d", "--name", svc, "--label", labStack, "--replicas", itoa(replicas),
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

// servedAt returns the times of the "secret served" audit lines manager
// m's plugin logged for service (every service when it is ""), from since
// on, by task ID.
func (f *fixture) servedAt(t *testing.T, m *node, service string, since time.Time) map[string][]time.Time {
	t.Helper()
	lines, err := m.pluginLog(f.pluginID(m))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]time.Time{}
	for _, l := range lines {
		ts := l.time()
		if l.str("msg") != "secret served" || ts.Before(since) || (service != "" && l.str("service") != service) {
			continue
		}
		got[l.str("task")] = append(got[l.str("task")], ts)
	}
	return got
}

// waitServed waits until manager m's plugin has served at least want tasks
// of service since a time, and returns the served times by task.
func (f *fixture) waitServed(t *testing.T, m *node, service string, want int, since time.Time) map[string][]time.Time {
	t.Helper()
	var got map[string][]time.Time
	poll(t, fmt.Sprintf("%s's plugin serving %d tasks of %s", m.name, want, service), time.Minute, func() (bool, string) {
		got = f.servedAt(t, m, service, since)
		return len(got) >= want, fmt.Sprintf("%d tasks served", len(got))
	}, nil)
	return got
}

// makeLeader makes target the swarm's leader: every other manager is
// demoted (a demoted leader hands leadership over), which leaves target
// the only manager, and then promoted again. It waits until every manager
// is reachable and target still leads.
func (f *fixture) makeLeader(t *testing.T, target *node) {
	t.Helper()
	for _, m := range f.lab.managers() {
		if m != target {
			target.must(t, "node", "demote", m.id)
			poll(t, m.name+" demoted", 2*time.Minute, func() (bool, string) {
				out, err := target.docker("node", "inspect", "-f", "{{.Spec.Role}} {{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}", m.id)
				return err == nil && strings.TrimSpace(out) == "worker", out
			}, nil)
		}
	}
	for _, m := range f.lab.managers() {
		if m != target {
			target.must(t, "node", "promote", m.id)
		}
	}
	poll(t, "every manager reachable with "+target.name+" leading", 3*time.Minute, func() (bool, string) {
		out, err := target.docker("node", "ls", "--format", "{{.ID}} {{.ManagerStatus}}")
		if err != nil {
			return false, err.Error()
		}
		ok := 0
		for _, line := range strings.Split(out, "\n") {
			id, st, _ := strings.Cut(line, " ")
			n := f.lab.byID(id)
			switch {
			case n == target && st == "Leader":
				ok++
			case n != nil && n.manager && n != target && st == "Reachable":
				ok++
			}
		}
		return ok == managers, out
	}, nil)
}

// Scenario 3: leader failover. SIGKILL the leader's dockerd; a new leader
// is elected, the lost node's tasks are rescheduled and a new service gets
// its secrets through the new leader's plugin. The node restarts, rejoins,
// gets the credential back from the agent and serves once it leads again.
func TestLeaderFailover(t *testing.T) {
	f := getFixture(t)
	for _, m := range f.lab.managers() {
		f.waitHandoff(t, m)
	}
	old := f.lab.waitLeader(t, nil)
	var ops *node // a manager that stays up, for the CLI
	for _, m := range f.lab.managers() {
		if m != old {
			ops = m
			break
		}
	}
	sec := f.name("fo")
	f.secret(t, ops, pluginName, sec, "apps/lab/v3")
	want := map[string]string{sec: "apps/lab/v3"}
	svc := f.name("fo")
	replicas := 2 * len(f.lab.nodes)
	ops.must(t, "service", "create", "-d", "--name", svc, "--label", labStack, "--replicas", itoa(replicas), "--secret", sec,
		"--no-resolve-image", "--network", "host", f.readerImage, sec)
	t.Cleanup(func() { _, _ = ops.docker("service", "rm", svc) })
	f.readersOK(t, svc, replicas, want, nil)
	before := map[string]bool{}
	onOld := 0
	ts, err := ops.tasks(svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		before[tk.id] = true
		if tk.node == old.netns {
			onOld++
		}
	}

	killedAt := time.Now()
	if err := old.kill(); err != nil {
		t.Fatal(err)
	}
	lead := f.lab.waitLeader(t, old, old)
	t.Logf("killed leader %s; %s leads after %s", old.name, lead.name, time.Since(killedAt).Round(time.Millisecond))

	// The lost node's tasks run elsewhere, with their secrets, served by
	// the new leader's plugin.
	f.readersOK(t, svc, onOld, want, before)
	served := f.waitServed(t, lead, svc, onOld, killedAt)
	first := time.Time{}
	for _, tss := range f.servedAt(t, lead, "", killedAt) {
		for _, ts := range tss {
			if first.IsZero() || ts.Before(first) {
				first = ts
			}
		}
	}
	failover := first.Sub(killedAt).Seconds()
	t.Logf("first Get served by the new leader %s %.1fs after the kill; %d rescheduled tasks served", lead.name, failover, len(served))
	record("failover_s", round1(failover))

	// A service created after the failover.
	sec2, svc2 := f.name("after"), f.name("after")
	f.secret(t, ops, pluginName, sec2, "apps/lab/v4")
	ops.must(t, "service", "create", "-d", "--name", svc2, "--label", labStack, "--replicas", "3", "--secret", sec2,
		"--no-resolve-image", "--network", "host", f.readerImage, sec2)
	t.Cleanup(func() { _, _ = ops.docker("service", "rm", svc2) })
	f.readersOK(t, svc2, 3, map[string]string{sec2: "apps/lab/v4"}, nil)
	f.waitServed(t, lead, svc2, 3, killedAt)

	// The node comes back: it rejoins and its plugin gets the credential
	// back from the agent's task there.
	restartAt := time.Now()
	if err := old.start(); err != nil {
		t.Fatal(err)
	}
	st := f.waitHandoff(t, old)
	rehandoff := time.Since(restartAt).Seconds()
	if st.Conjur != nil && !st.Conjur.CredentialSetAt.IsZero() {
		rehandoff = st.Conjur.CredentialSetAt.Sub(restartAt).Seconds()
	}
	t.Logf("%s restarted; its plugin held the credential again %.1fs later", old.name, rehandoff)
	record("rehandoff_s", round1(rehandoff))

	// Second leader change: the restarted node leads and serves.
	changeAt := time.Now()
	f.makeLeader(t, old)
	t.Logf("%s leads again after %s", old.name, time.Since(changeAt).Round(time.Millisecond))
	sec3, svc3 := f.name("back"), f.name("back")
	f.secret(t, old, pluginName, sec3, "apps/lab/v5")
	old.must(t, "service", "create", "-d", "--name", svc3, "--label", labStack, "--replicas", "2", "--secret", sec3,
		"--no-resolve-image", "--network", "host", f.readerImage, sec3)
	t.Cleanup(func() { _, _ = old.docker("service", "rm", svc3) })
	f.readersOK(t, svc3, 2, map[string]string{sec3: "apps/lab/v5"}, nil)
	f.waitServed(t, old, svc3, 2, changeAt)
	for _, m := range f.lab.managers() {
		f.waitHandoff(t, m)
	}
}

// scaler scales a service up and down, from whichever manager answers,
// until stop is closed; it counts the scale commands that took effect.
func (f *fixture) scaler(t *testing.T, svc string, low, high int, stop <-chan struct{}) (done <-chan int) {
	ch := make(chan int, 1)
	go func() {
		rounds := 0
		defer func() { ch <- rounds }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := high
			if i%2 == 1 {
				n = low
			}
			for _, m := range f.lab.managers() {
				if _, err := m.docker("service", "scale", "-d", fmt.Sprintf("%s=%d", svc, n)); err == nil {
					rounds++
					break
				}
			}
			// Let the scale converge before the next one (or stop).
			deadline := time.Now().Add(time.Minute)
			for got := -1; got != n && time.Now().Before(deadline); got = f.runningTasks(svc) {
				select {
				case <-stop:
					return
				case <-time.After(pollEvery):
				}
			}
			t.Logf("scaled %s to %d (running %d)", svc, n, f.runningTasks(svc))
		}
	}()
	return ch
}

// runningTasks counts a service's running tasks, as the first manager that
// answers sees them (-1 when none does).
func (f *fixture) runningTasks(svc string) int {
	for _, m := range f.lab.managers() {
		ts, err := m.tasks(svc)
		if err != nil {
			continue
		}
		n := 0
		for _, tk := range ts {
			if strings.HasPrefix(tk.state, "Running") {
				n++
			}
		}
		return n
	}
	return -1
}

// Scenario 4: rolling plugin upgrade, one manager at a time, while a
// service scales up and down: zero tasks fail for a secret. The leader is
// upgraded last, after a demotion has moved leadership away from it.
func TestRollingPluginUpgrade(t *testing.T) {
	f := getFixture(t)
	for _, m := range f.lab.managers() {
		f.waitHandoff(t, m)
	}
	// Version 2: the same directory with a rebuilt binary.
	v1 := filepath.Join(f.work, "plugin-v1")
	v2 := filepath.Join(f.work, "plugin-v2")
	if out, err := sh("cp", "-a", v1, v2); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := f.goBuild(filepath.Join(v2, "rootfs", "conjur-swarm"), "./cmd/conjur-swarm", "-s -w -X main.version=lab-2"); err != nil {
		t.Fatal(err)
	}

	lead := f.lab.waitLeader(t, nil)
	sec, svc := f.name("up"), f.name("up")
	f.secret(t, lead, pluginName, sec, "apps/lab/v6")
	lead.must(t, "service", "create", "-d", "--name", svc, "--label", labStack, "--replicas", "2", "--secret", sec,
		"--no-resolve-image", "--network", "host", f.readerImage, sec)
	t.Cleanup(func() {
		for _, m := range f.lab.managers() {
			if _, err := m.docker("service", "rm", svc); err == nil {
				return
			}
		}
	})
	f.readersOK(t, svc, 2, map[string]string{sec: "apps/lab/v6"}, nil)

	stop := make(chan struct{})
	scaled := f.scaler(t, svc, 2, 6, stop)
	stopped := false
	stopScaler := func() int {
		if stopped {
			return 0
		}
		stopped = true
		close(stop)
		return <-scaled
	}
	t.Cleanup(func() { stopScaler() })

	order := []*node{}
	for _, m := range f.lab.managers() {
		if m != lead {
			order = append(order, m)
		}
	}
	order = append(order, lead)
	var without []string
	for _, m := range order {
		demoted := false
		if l, _, err := f.lab.leader(nil); err == nil && l == m {
			// Move leadership away: demote it from another manager.
			other := order[0]
			other.must(t, "node", "demote", m.id)
			demoted = true
			f.lab.waitLeader(t, m)
		}
		offAt := time.Now()
		m.must(t, "plugin", "disable", pluginName)
		if m == order[0] {
			// The engine's own upgrade needs a registry to pull from.
			if out, err := m.docker("plugin", "upgrade", "--grant-all-permissions", pluginName); err != nil {
				t.Logf("docker plugin upgrade (not used): %v", err)
			} else {
				t.Logf("docker plugin upgrade answered: %s", out)
			}
		}
		m.must(t, "plugin", "rm", pluginName)
		m.must(t, "plugin", "create", pluginName, v2)
		if err := f.configureAndEnable(m, pluginName); err != nil {
			t.Fatal(err)
		}
		if demoted {
			order[0].must(t, "node", "promote", m.id)
		}
		st := f.waitHandoff(t, m)
		if st.Version != "lab-2" {
			t.Errorf("%s: plugin version %q after the upgrade, want lab-2", m.name, st.Version)
		}
		gap := time.Since(offAt).Seconds()
		if st.Conjur != nil && !st.Conjur.CredentialSetAt.IsZero() {
			gap = st.Conjur.CredentialSetAt.Sub(offAt).Seconds()
		}
		without = append(without, fmt.Sprintf("%s %.1fs", m.name, gap))
		record("upgrade_without_credential_s_"+m.name, round1(gap))
		t.Logf("%s upgraded (demoted first: %v); without a credential for %.1fs", m.name, demoted, gap)
	}
	rounds := stopScaler()
	f.lab.waitLeader(t, nil)

	var failed int
	var errs []string
	for _, m := range f.lab.managers() {
		var err error
		if failed, errs, err = failedForSecret(m, svc); err == nil {
			break
		}
	}
	record("upgrade_failed_tasks", failed)
	record("upgrade_scale_commands", rounds)
	t.Logf("upgrade done with %d scale commands during it; without a credential: %s; tasks failed for a secret: %d",
		rounds, strings.Join(without, ", "), failed)
	if failed != 0 {
		t.Errorf("%d tasks failed for a secret during the rolling upgrade: %v", failed, errs)
	}
	if rounds < 2 {
		t.Errorf("the service was scaled %d times during the upgrade; the scenario needs it to scale up and down", rounds)
	}
}

// Scenario 5: Conjur follower failover under the cluster. Every plugin
// lists the leader and a read-only follower with the same data; the leader
// is killed during a rollout; no task fails and the follower served.
func TestConjurFollowerFailover(t *testing.T) {
	f := getFixture(t)
	for _, m := range f.lab.managers() {
		f.waitHandoff(t, m)
	}
	lead := f.lab.waitLeader(t, nil)
	sec, svc := f.name("cf"), f.name("cf")
	want := map[string]string{sec: "apps/lab/v7"}
	f.secret(t, lead, pluginName, sec, "apps/lab/v7")
	replicas := 6
	lead.must(t, "service", "create", "-d", "--name", svc, "--label", labStack, "--replicas", itoa(replicas), "--secret", sec,
		"--update-parallelism", "1", "--update-delay", "0s",
		"--no-resolve-image", "--network", "host", f.readerImage, sec)
	t.Cleanup(func() { _, _ = lead.docker("service", "rm", svc) })
	f.readersOK(t, svc, replicas, want, nil)
	before := map[string]bool{}
	ts, err := lead.tasks(svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		before[tk.id] = true
	}

	followerBefore := f.follower.Count("secret") + f.follower.Count("batch")
	rolloutAt := time.Now()
	lead.must(t, "service", "update", "-d", "--force", svc)
	// Kill the Conjur leader once the rollout has started: the first new
	// task has been served.
	f.waitServed(t, lead, svc, 1, rolloutAt)
	addr := strings.TrimPrefix(f.conjurL.URL, "https://")
	if err := f.conjurL.Close(); err != nil {
		t.Logf("closing the Conjur leader: %v", err)
	}
	t.Logf("Conjur leader %s stopped during the rollout", addr)
	t.Cleanup(func() {
		// Bring the leader back on the same address for the next scenarios.
		l, err := f.conjur.Listen(addr, true)
		if err != nil {
			t.Errorf("restarting the Conjur leader on %s: %v", addr, err)
			return
		}
		f.conjurL = l
	})

	f.readersOK(t, svc, replicas, want, before)
	failed, errs, err := failedForSecret(lead, svc)
	if err != nil {
		t.Fatal(err)
	}
	served := f.follower.Count("secret") + f.follower.Count("batch") - followerBefore
	t.Logf("rollout of %d tasks done %s after it began; the follower served %d fetches; tasks failed for a secret: %d",
		replicas, time.Since(rolloutAt).Round(time.Millisecond), served, failed)
	record("follower_failed_tasks", failed)
	if failed != 0 {
		t.Errorf("%d tasks failed for a secret with the Conjur leader down: %v", failed, errs)
	}
	if served == 0 {
		t.Error("the follower served no fetch: the rollout's new tasks did not go through it")
	}
}
