package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/privs"
)

// TestPluginRunsWithoutCapabilities reads the running managed plugin's
// /proc/PID/status (issue 11 item 4): Docker starts a plugin with its 14
// default capabilities whatever "capabilities": [] says, and serve drops
// them all, bounding set included, once its socket listens, and sets
// no_new_privs.
func TestPluginRunsWithoutCapabilities(t *testing.T) {
	s := getSuite(t)
	pid := pluginPID(s.pluginID)
	if pid == "" {
		t.Fatalf("the plugin's process ID is not readable under %s", filepath.Join(containerdPluginTasks, s.pluginID))
	}
	data, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := privs.ParseStatus(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plugin pid %s: CapEff %016x CapPrm %016x CapBnd %016x CapInh %016x CapAmb %016x NoNewPrivs %t",
		pid, st.CapEff, st.CapPrm, st.CapBnd, st.CapInh, st.CapAmb, st.NoNewPrivs)
	if st.CapEff != 0 || st.CapPrm != 0 || st.CapBnd != 0 || !st.NoNewPrivs {
		t.Errorf("the running plugin keeps privileges: CapEff %x CapPrm %x CapBnd %x NoNewPrivs %t; want 0, 0, 0, true",
			st.CapEff, st.CapPrm, st.CapBnd, st.NoNewPrivs)
	}
	s.waitPluginLog(t, s.pluginID, "dropped every Linux capability")
}
