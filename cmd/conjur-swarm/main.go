// Command conjur-swarm is the Docker Swarm secret driver backed by CyberArk
// Conjur. One binary serves every role: the plugin daemon (serve), the
// Conjur-compatible development server (dev-server), the mapping policy tools
// (policy validate / explain), the operator probes (get, status) and the
// bootstrap credential agent (bootstrap-agent).
//
// This package is wiring only: cobra commands, viper read once into typed
// settings, a named zap logger handed to each component, and signals.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a process exit code chosen by a command (for example
// `policy explain` exits 3 on deny) without printing anything further.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "conjur-swarm:", err)
		os.Exit(1)
	}
}
