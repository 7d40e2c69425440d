package driver

import (
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// policyRequest is what the policy sees of a request.
func policyRequest(r *pluginapi.Request) policy.Request {
	return policy.Request{
		SecretName:    r.SecretName,
		SecretLabels:  r.SecretLabels,
		ServiceName:   r.ServiceName,
		ServiceLabels: r.ServiceLabels,
		Image:         r.TaskImage,
		NodeID:        r.NodeID,
	}
}

// maxProblemText bounds the list of a request's problems in the Err text:
// every label may have one, each naming a key of up to 1 KiB, and the text
// goes to the log, the answer and the status journal.
const maxProblemText = 2048
