// Package driver answers Docker Swarm's secret driver calls.
//
// The leader manager posts /SecretProvider.GetSecret with a secret's name and
// labels and the task's service, image and node. A Driver decodes that
// request (keeping NodeID, which go-plugins-helpers' type drops), resolves it
// through the mapping policy, fetches the value from Conjur, checks that
// Swarm can use it (1 byte to under 500 KiB) and answers Value and
// DoNotReuse, or an Err that carries a stable code, the secret, the variable,
// the rule, what failed and what to do. Every decision writes exactly one
// audit log line (never the value) and is kept in a ring of recent decisions.
//
// A Server serves a Driver on the plugin's unix socket, with two private
// endpoints beside GetSecret: /ConjurSwarm.Status (credential fingerprint,
// Conjur contact, mapping file, counters, recent decisions) and
// /ConjurSwarm.Bootstrap (the credential handoff). The protocol's types and
// the client that calls a plugin the way Docker does are package pluginapi.
//
// The package depends on the policy and Conjur client only through the small
// interfaces in interfaces.go.
package driver
