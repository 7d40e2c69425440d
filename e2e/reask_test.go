package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
)

// A Swarm worker whose node description changes (its engine enabled,
// disabled, installed or removed a plugin: the description lists them)
// closes its session with the dispatcher and opens a new one, and the
// dispatcher asks the secret driver again for every driver secret of every
// task on that node, with the same TaskID (swarmkit's agent.run updateNode,
// then Dispatcher.Assignments: a new assignmentSet). That is the second
// audit line per task and secret an operator sees when the first service
// is deployed right after `docker plugin install` (docs/troubleshooting.md,
// "Two audit lines for one task"). The test makes such a change itself and
// waits for the second Get of its running task.
func TestNewNodeSessionAsksAgain(t *testing.T) {
	s := getSuite(t)
	if dlog == nil {
		harness.Unavailable(t, "TestNewNodeSessionAsksAgain", dlog.String())
	}
	_, sec, _, taskID := s.oneSecretTask(t, "reask", []byte("reask-value-1"))

	// gets returns the allow lines for sec, failing on any that names
	// another task: a re-ask is for the same task.
	gets := func() (n int, status string) {
		lines, err := dlog.pluginLines(s.pluginID)
		if err != nil {
			return 0, err.Error()
		}
		for _, l := range lines {
			if !strings.Contains(l, `"secret":"`+sec+`"`) {
				continue
			}
			if !strings.Contains(l, `"task":"`+taskID+`"`) || !strings.Contains(l, `"decision":"allow"`) {
				t.Fatalf("a Get of %s that is not an allow for task %s: %s", sec, taskID, l)
			}
			n++
		}
		return n, fmt.Sprintf("%d allows for task %s", n, taskID)
	}
	var before int
	poll(t, "the task's first Get in the plugin's log", 30*time.Second, func() (bool, string) {
		n, st := gets()
		before = n
		return n >= 1, st
	}, func() string { return s.pluginLog(s.plugin) })

	// Change this node's description: one more enabled plugin.
	plugin := runID + "/conjur-desc:e2e"
	t.Cleanup(func() { removePlugin(plugin) })
	if _, err := s.installPlugin(plugin, "e2e-"+runID+"-desc", s.pluginSettings(false, s.dir("desc-identity"))); err != nil {
		t.Fatal(err)
	}
	// swarmkit's agent compares the description every 20 s (nodeUpdatePeriod).
	var after int
	poll(t, "a second Get of the running task after the node's description changed", 90*time.Second, func() (bool, string) {
		n, st := gets()
		after = n
		return n > before, st
	}, func() string { return s.pluginLog(s.plugin) })
	t.Logf("task %s, secret %s: %d allow(s) before the plugin was enabled, %d after", taskID, sec, before, after)
}
