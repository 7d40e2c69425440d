package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// writeStackMismatches warns, before the rest of status, about the secrets
// asked for whose stack label disagrees with their name: another stack's
// file named the secret (`name:` under `secrets:`) and its deploy relabelled
// it. Each comes with the commands that repair it.
func writeStackMismatches(w io.Writer, st pluginapi.Status) {
	if len(st.StackMismatches) == 0 {
		return
	}
	fmt.Fprintf(w, "WARNING: %d secret(s) carry a stack label that their name does not start with: another stack's file named them (name: under secrets:) and its deploy relabelled them. Rules that read the owner from the label ({stack}, {secret_key}) refuse the owner's tasks.\n",
		len(st.StackMismatches))
	for _, m := range st.StackMismatches {
		owner, _, ok := strings.Cut(m.Secret, "_")
		if !ok {
			owner = "OWNER"
		}
		fmt.Fprintf(w, "  %s: label com.docker.stack.namespace=%s (%d requests, last %s)\n", m.Secret, m.Label, m.Requests, m.LastSeen.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "    repair: remove %q from stack %s's file and run docker stack deploy -c FILE %s; then run docker stack deploy -c FILE %s with the file of the stack the secret belongs to (%s?), which sets its label back\n",
			"name: "+m.Secret, m.Label, m.Label, owner, owner)
	}
	fmt.Fprintln(w)
}
