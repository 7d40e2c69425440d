// Package e2e holds the end-to-end suite: the whole product on the local
// Docker Engine in swarm mode. It builds the managed plugin with
// `make plugin`, runs the Conjur-compatible server (internal/conjurdev) on the
// host over HTTPS, configures the plugin with `docker plugin set`, and checks
// what a real container reads from /run/secrets.
//
// The suite needs a Docker daemon it may drive (root or the docker group).
// When `docker info` fails, or swarm mode or managed plugins are unusable, every
// test skips and says why; otherwise it runs, initialising a single-node
// swarm on 127.0.0.1 if none is active (and leaving it active). Everything it
// creates is named cse2e-<run id>-... and removed when the test or the run
// ends; a sweep at start removes leftovers of runs that crashed.
//
// Run it with `make e2e` (or `go test -count=1 -v ./e2e/`).
package e2e
