// Package conjurdev is an in-memory server that speaks the Conjur API as
// Conjur 1.24 does, for the embedded default (`conjur-swarm serve --dev`),
// demos and tests. It is not a secrets store: it keeps nothing on disk.
package conjurdev
