package main

import (
	"fmt"
	"io"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// writeStackMismatches warns, before the rest of status, about the secrets
// asked for whose stack label disagrees with their name: another stack's
// file named the secret (`name:` under `secrets:`) and its deploy relabelled
// it. Each comes with the commands that repair it; conjur-swarm doctor
// lists them all from the engine.
func writeStackMismatches(w io.Writer, st pluginapi.Status) {
	if len(st.StackMismatches) == 0 {
		return
	}
	fmt.Fprintf(w, "WARNING: %d secret(s) carry a stack label that their name does not start with: another stack's file named them (name: under secrets:) and its deploy relabelled them. Rules that read the owner from the label ({stack}, {secret_key}) refuse the owner's tasks.\n",
		len(st.StackMismatches))
	for _, m := range st.StackMismatches {
		fmt.Fprintf(w, "  %s: label com.docker.stack.namespace=%s (%d requests, last %s)\n", m.Secret, m.Label, m.Requests, m.LastSeen.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "    repair: %s\n", repairRelabelled(m.Secret, m.Label))
	}
	fmt.Fprintln(w)
}
