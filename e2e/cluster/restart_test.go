package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
)

// A node restarted over the exec-root its killed dockerd left: the
// containerd pid file there names a PID that, in the node's new PID
// namespace, belongs to another live process. dockerd 20.10 then takes it
// for a running containerd ("libcontainerd: containerd is still running"),
// waits for a socket nobody will open and exits after 15 s with "timeout
// waiting for containerd to start". PID 1 is always alive in the new
// namespace (it is dockerd itself), so naming it makes the case certain
// instead of the 1-in-3 chance a real restart had.
func TestRestartOverStaleContainerdPIDFile(t *testing.T) {
	needLab(t)
	l, err := newLab(1, 0, logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	n := l.nodes[0]
	pidFile := filepath.Join(n.dir, "run", "containerd", "containerd.pid")
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("the running node has no containerd pid file where dockerd keeps it: %v", err)
	}
	if err := n.kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile, []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.start(); err != nil {
		t.Fatalf("restarting the node over a containerd pid file naming a live PID: %v", err)
	}
	if _, err := n.docker("info", "--format", "{{.ContainerdCommit.ID}}"); err != nil {
		t.Fatalf("the restarted node's dockerd does not answer with its containerd: %v", err)
	}
}

// restoreWait bounds each wait of restore.
const restoreWait = 3 * time.Minute

// restore brings the lab back, after scenario name failed, to what every
// scenario starts from: every node's dockerd running, a leader and every
// node Ready, every manager a reachable manager, the plugin enabled on
// every manager and holding the handed-over credential. A failed scenario
// may leave a node killed, demoted, or without its plugin; without this,
// every later scenario would wait minutes for it and fail too. When the lab
// cannot be restored, it is marked unusable, and every later scenario
// fails at once saying why.
func (f *fixture) restore(name string) {
	start := time.Now()
	if err := f.tryRestore(); err != nil {
		f.mu.Lock()
		f.broken = fmt.Sprintf("%s failed and the lab could not be restored after it: %v", name, err)
		f.mu.Unlock()
		logf("%s failed; restoring the lab failed after %s: %v", name, time.Since(start).Round(time.Millisecond), err)
		return
	}
	logf("%s failed; the lab was restored for the next scenarios in %s", name, time.Since(start).Round(time.Millisecond))
}

// unusable is why the lab cannot serve another scenario, or "".
func (f *fixture) unusable() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.broken
}

func (f *fixture) tryRestore() error {
	for _, n := range f.lab.nodes {
		if n.dockerdPID() == 0 {
			logf("restoring: starting %s again", n.name)
			if err := n.start(); err != nil {
				return err
			}
		}
	}
	var lead *node
	if err := harness.Wait(leaderWait(nil), restoreWait, pollEvery, func() (bool, string) {
		var status string
		lead, status = f.lab.leaderReady(nil)
		return lead != nil, status
	}); err != nil {
		return err
	}
	for _, m := range f.lab.managers() {
		role, err := lead.docker("node", "inspect", "-f", "{{.Spec.Role}}", m.id)
		if err != nil {
			return err
		}
		if role == "worker" {
			logf("restoring: promoting %s again", m.name)
			if _, err := lead.docker("node", "promote", m.id); err != nil {
				return err
			}
		}
	}
	if err := harness.Wait("every manager reachable", restoreWait, pollEvery, f.lab.managersReachable); err != nil {
		return err
	}
	for _, m := range f.lab.managers() {
		if err := f.restorePlugin(m); err != nil {
			return err
		}
	}
	for _, m := range f.lab.managers() {
		if err := harness.Wait(handoffWait(m), restoreWait, pollEvery, func() (bool, string) {
			_, ok, status := f.handedOver(m)
			return ok, status
		}); err != nil {
			return err
		}
	}
	return nil
}

// restorePlugin makes sure manager m has the plugin, configured and
// enabled: a rolling upgrade that failed half-way may have left it
// disabled, unconfigured or removed (it is then made again from the first
// version's directory).
func (f *fixture) restorePlugin(m *node) error {
	enabled, err := m.docker("plugin", "inspect", "-f", "{{.Enabled}}", pluginName)
	switch {
	case err != nil && strings.Contains(err.Error(), "not found"):
		logf("restoring: creating the plugin on %s again", m.name)
		if _, err := m.docker("plugin", "create", pluginName, filepath.Join(f.work, "plugin-v1")); err != nil {
			return err
		}
	case err != nil:
		return err
	case enabled == "true":
		return nil
	default:
		logf("restoring: configuring and enabling the plugin on %s again", m.name)
	}
	return f.configureAndEnable(m, pluginName)
}
