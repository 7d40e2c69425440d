// Package conjurdev is an in-memory server that speaks the Conjur API as
// Conjur 1.24 does, for the embedded default (`conjur-swarm serve --dev`),
// demos and tests. It is not a secrets store: it keeps nothing on disk,
// except the plain-text rehearsal state of Options.StateDir.
//
// What it covers: API-key authentication (authenticate, Basic login, key
// rotation), authn-jwt configured by policy, signed expiring access tokens
// checked on every request, secrets (single, versioned, batch, base64),
// policy loading (POST, PATCH, PUT) with the common subset of the Conjur
// policy language, the permission model (execute to fetch, update to set,
// invisible resources answer 404), resources, roles, whoami, the root
// version page and /authenticators. Tests can inject faults (latency, forced
// status codes, dropped connections, a read-only follower mode) and read
// request counters by endpoint.
//
// "Policy" in this package is always Conjur policy (the documents
// LoadConjurPolicy and POST /policies load), never the plugin's mapping
// policy (internal/policy): its names say ConjurPolicy where both could be
// meant.
//
// The official client, github.com/cyberark/conjur-api-go, is the reference
// for what "compatible" means: the tests drive the server through it.
package conjurdev
