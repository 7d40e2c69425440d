// Package reliability holds the project's reliability and security tests
// and nothing else: a fault matrix that drives the real plugin socket
// (driver, policy.Store on a mapping file, conjur.Client, and the
// Conjur-compatible dev server over TLS) through every failure the plugin
// must survive, fuzz targets for the socket-facing request bodies, and a
// bounded soak run (go test -run '^TestSoak$' -soak=60s, or make soak).
//
// Every test checks the same properties: the answer's Err and the audit log
// line carry the exact error code, no seeded secret value or API key
// appears in any log field or Err, the plugin recovers without a restart
// once the fault clears, and no goroutine is left behind. docs/security.md
// names the tests here that back each defence.
package reliability
