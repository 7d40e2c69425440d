package driver

import (
	"unicode/utf8"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// clip bounds a request field for the audit record and the Err text (a
// request that failed validation may carry anything up to 1 MiB).
func clip(s string) string { return clipTo(s, 256) }

// maxProblemText bounds the list of a request's problems in the Err text:
// every label may have one, each naming a key of up to 1 KiB, and the text
// goes to the log, the answer and the status journal.
const maxProblemText = 2048

// clipTo bounds s to about max bytes, cutting at a character boundary.
func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...[clipped]"
}

// policyRequest is what the policy sees of a request.
func policyRequest(r pluginapi.Request) PolicyRequest {
	return PolicyRequest{
		SecretName:    r.SecretName,
		SecretLabels:  r.SecretLabels,
		ServiceName:   r.ServiceName,
		ServiceLabels: r.ServiceLabels,
		Image:         r.TaskImage,
		NodeID:        r.NodeID,
	}
}
