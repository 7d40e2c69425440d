package driver

import "github.com/cyberark/conjur-swarm/internal/pluginapi"

// NewClient is pluginapi.NewClient under the name the bootstrap agent (still
// in this package until it moves to internal/agent) calls it by.
var NewClient = pluginapi.NewClient
