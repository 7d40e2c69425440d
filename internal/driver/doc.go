// Package driver answers Docker Swarm's secret driver calls: it decodes a
// GetSecret request, resolves it through the mapping policy, fetches the value
// from Conjur and writes one audit record per decision.
package driver
