package driver

import (
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// stackLabel is the service label docker stack deploy sets to the stack's name.
const stackLabel = "com.docker.stack.namespace"

// workload is whom a fetch for req is made as in Conjur's per-request
// identity mode: the identity the decision chose (the mapping's identity:
// template) and the request's facts, which the JWT the Conjur client signs
// carries as claims. nil when the mapping chose no identity: the
// single-identity modes read as the plugin's one identity.
func workload(req *pluginapi.Request, identity string) *conjur.Workload {
	if identity == "" {
		return nil
	}
	return &conjur.Workload{
		Subject:   identity,
		Service:   req.ServiceName,
		Stack:     req.ServiceLabels[stackLabel],
		ServiceID: req.ServiceID,
		TaskID:    req.TaskID,
		NodeID:    req.NodeID,
		Image:     req.TaskImage,
	}
}
