package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/e2e/internal/harness"
)

// TestQuickstartRunsAsWritten runs every command of docs/quickstart.md, in
// order, with bash -euo pipefail, and checks what the walk-through says they
// print. Only names are changed so that the run cannot touch a user's
// objects: the plugin, images, services and secrets get this run's prefix,
// files go to a temporary directory, and the dev server to a free port.
func TestQuickstartRunsAsWritten(t *testing.T) {
	s := getSuite(t)
	doc, err := os.ReadFile(filepath.Join(s.root, "docs", "quickstart.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := s.dir("quickstart")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p := runID + "-qs"
	script := strings.NewReplacer(
		"cyberark/conjur:latest", p+"/conjur:latest",
		"make plugin\n", "make plugin PLUGIN="+p+"/conjur VERSION="+p+"\n",
		"make -s image", "make -s image IMAGE="+p+"-agent:latest",
		"conjur-swarm-agent:latest", p+"-agent:latest",
		"conjur-swarm-reader:local", p+"-reader:local",
		"demo-app", p+"-app",
		"outsider", p+"-outsider",
		"conjur-bootstrap-agent", p+"-agent",
		"source=conjur-bootstrap,", "source="+p+"-bootstrap,",
		"secret create conjur-bootstrap ", "secret create "+p+"-bootstrap ",
		"db_password conjur-bootstrap\n", p+"_db_password "+p+"-bootstrap\n",
		"db_password", p+"_db_password",
		"shop-api-token", p+"-shop-api-token",
		"127.0.0.1:8443", fmt.Sprintf("127.0.0.1:%d", port),
		"/etc/conjur-swarm-demo", dir+"/etc",
		"/tmp/", dir+"/",
	).Replace(blocksText(string(doc)))
	// The walk-through deploys stack "shop" (the demo data holds
	// apps/shop/*): never touch someone else's.
	if _, err := docker("service", "inspect", "shop_app"); err == nil {
		harness.Unavailable(t, "the quickstart walk-through", "a stack named shop already runs on this engine; docs/quickstart.md deploys one of that name (remove it: docker stack rm shop)")
	}
	if strings.Count(script, "\n") < 50 {
		t.Fatalf("docs/quickstart.md: only %d lines of shell found", strings.Count(script, "\n"))
	}
	t.Cleanup(func() {
		// What the walk-through's own clean-up would have removed, had it
		// been reached; stack "shop" keeps its name (the demo data holds
		// apps/shop/*).
		_, _ = docker("service", "rm", p+"-app", p+"-outsider", p+"-agent")
		ours, _ := docker("image", "inspect", "-f", "{{.Id}}", p+"-reader:local")
		if img, err := docker("service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", "shop_app"); err == nil && ours != "" && img == ours {
			_, _ = docker("stack", "rm", "shop")
			_ = waitContainersGone("shop_")
		}
		_ = waitContainersGone(p)
		_, _ = docker("secret", "rm", p+"_db_password", p+"-shop-api-token", p+"-bootstrap")
		removePlugin(p + "/conjur:latest")
		_, _ = docker("image", "rm", "-f", p+"-reader:local", p+"-agent:latest")
	})

	docScript{name: "quickstart.sh", dir: dir, root: s.root, timeout: 6 * time.Minute}.run(t, script,
		"demo-db-password-0001\n",         // get, and the service (step 5, 6)
		"shop-db-password-0001\n",         // the stack (step 7)
		"not found",                       // the denied task (step 8)
		"DENIED",                          // its decision in status (step 8)
		"demo-db-password-0002\n",         // rotation (step 9)
		"NONE",                            // no credential (step 10)
		"handoff",                         // the handoff (step 10)
		"no key in docker plugin inspect", // (step 10)
	)
}

// freePort asks the kernel for a free TCP port on loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
