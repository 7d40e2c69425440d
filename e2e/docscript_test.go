package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docScript is a walk-through of the docs turned into one shell script: the
// ```sh blocks of the pages, names changed so that the run cannot touch a
// user's objects.
type docScript struct {
	name    string        // the file the script is written to, in dir
	dir     string        // the run's temporary directory
	root    string        // the repository root, the script's working directory
	timeout time.Duration // a bound on a hung run
}

// blocksText returns the shell of every runnable ```sh block of a Markdown
// page (docBlocks), in order.
func blocksText(doc string) string {
	var b strings.Builder
	for _, blk := range docBlocks(doc) {
		if blk.skip == "" {
			b.WriteString(blk.text)
		}
	}
	return b.String()
}

// run writes script to ds.dir/ds.name, runs it with bash -euo pipefail in a
// process group of its own (so that what it starts in the background stops
// with it, whatever happens), fails the test with the whole output when it
// fails, and checks that the output holds each of want.
func (ds docScript) run(t *testing.T, script string, want ...string) string {
	t.Helper()
	path := filepath.Join(ds.dir, ds.name)
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ds.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", path)
	cmd.Dir = ds.root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Start()
	if err == nil {
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) })
		err = cmd.Wait()
	}
	if err != nil {
		t.Fatalf("the docs (run as %s): %v\n%s", path, err, out.String())
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the output of %s lacks %q:\n%s", path, w, out.String())
		}
	}
	return out.String()
}
