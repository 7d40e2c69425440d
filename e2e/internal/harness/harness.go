// Package harness holds what the end-to-end suites share (e2e/ on the
// local engine, e2e/cluster/ in the multi-node lab): running a command with
// its stderr in the error, polling for a state, and a run lock.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Run runs a command and returns its stdout; the error carries stderr.
func Run(ctx context.Context, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, stdin
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Poll calls check every interval until it reports done or timeout
// passes; then it fails the test with what, the last status check gave
// and diag's output (diag may be nil).
func Poll(t testing.TB, what string, timeout, interval time.Duration, check func() (done bool, status string), diag func() string) {
	t.Helper()
	err := Wait(what, timeout, interval, check)
	if err == nil {
		return
	}
	extra := ""
	if diag != nil {
		extra = "\n" + diag()
	}
	t.Fatalf("%v%s", err, extra)
}

// Wait is Poll for code that must not end the test (a cleanup that
// reports what it could not do): it returns an error naming what and the
// last status instead of failing.
func Wait(what string, timeout, interval time.Duration, check func() (done bool, status string)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, status := check()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not reached within %s; last seen: %s", what, timeout, status)
		}
		time.Sleep(interval)
	}
}

// Lock takes an exclusive flock on path, trying every interval for at most
// wait, and returns its release. The kernel releases it when the process
// dies, so a crashed run never blocks the next.
func Lock(path string, wait, interval time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("run lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("run lock %s: another run holds it (waited %s): %w", path, wait, err)
		}
		time.Sleep(interval)
	}
}
