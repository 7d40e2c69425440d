// Package conjur is the plugin's Conjur client: credentials, the access token
// lifecycle, bounded fetches with coalescing and batching, and failover across
// several appliance URLs. It wraps github.com/cyberark/conjur-api-go.
package conjur
