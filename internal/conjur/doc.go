// Package conjur is the plugin's Conjur client: credentials, the access token
// lifecycle, bounded fetches with coalescing and batching, and failover across
// several appliance URLs. It wraps github.com/cyberark/conjur-api-go.
//
// Layers (Client is their composition; each layer has its own lock):
//
//   - valueCache (cache.go) wraps Get: the optional TTL cache, keyed by
//     (ID, Version) and filed under the credential generation.
//   - batcher (batcher.go) wraps any fetcher: coalescing of identical Gets,
//     the pending queue, the batch slots, the adaptive window, the inline
//     fetch of an idle client, per-call deadlines.
//   - session (session.go, auth.go, failover.go, narrow.go) is the fetcher
//     that talks to Conjur, and the only user of conjurapi: URLs and
//     failover, access tokens, the credential and Adopt;
//     fetch(ctx, ids, version, sink) answers a set of ids, narrowing a
//     refused batch.
//   - identities (identity.go), in the per-request identity mode only
//     (Config.Signer): one session, batcher and value cache per identity a
//     Ref names, in a bounded pool sharing the transport and the request
//     window; each session authenticates with a JWT the Signer signs.
//   - statusBook (status.go) records the last contact and error; lifecycle
//     (lifecycle.go) owns every goroutine and the context Close cancels.
//
// One Get: Client.Get -> valueCache.get -> batcher.get -> start (join a
// call, queue it, or run it inline) -> batcher.send -> session.fetch ->
// narrow -> batchOnce or fetchOne -> withFailover -> authorized -> token ->
// conjurapi. The lock order is in Client's doc comment.
//
// How it uses conjur-api-go: one conjurapi.Client per appliance URL (two
// with authn-jwt), built from a hand-made conjurapi.Config with credential
// storage "none" and an explicit environment, so nothing is read from the
// keyring, ~/.netrc, /etc/conjur.conf or ~/.conjurrc and nothing is probed
// at construction. conjurapi's methods take no context and keep their access
// token without a lock, so every request runs on a shallow per-request copy
// of that client whose http.Client carries the request's context (its
// deadline) over this package's transport, and whose authenticator only
// hands back the token this package obtained. The token itself, its refresh
// and its locking live here.
//
// The plugin's own identity without a secret (CONJUR_AUTHN_TYPE): with cert
// (authn_cert.go) each login reads the node certificate and key again and
// presents them on a connection of its own, through a conjurapi client built
// for that login (NewClientFromCertificate); with azure or gcp
// (authn_cloud.go) each login asks the metadata service for a token itself,
// bounded, and hands it to NewClientFromAzureCredentials or
// NewClientFromGCPCredentials, so the library never fetches one (its fetch
// has no deadline, and its GCP path ends the process on a failure); with
// iam (authn_iam.go) each login signs an STS GetCallerIdentity request with
// SigV4 (sigv4.go) using the environment's AWS credentials or the instance
// role's from IMDSv2 (kept until shortly before they expire), and sends the
// signed headers in the request conjurapi's IAMAuthenticateRequest builds:
// the library's own IAM path would link the AWS SDK.
//
// Tokens: one per appliance URL. Real Conjur followers accept the leader's
// tokens, but a token is only known to be good where it was issued, and in
// tests every URL is a separate conjurdev instance with its own signing key.
// Keeping one per URL costs one extra authentication per URL actually used and
// never sends a token where it may be rejected. One authentication per URL
// runs at a time; callers wait for it, each honouring its own context. A token
// is refreshed in the background from 80% of its lifetime (read from the
// payload's exp - iat and timed on the local clock), callers wait for a new
// one from 95%, and a 401 forces one re-authentication and one retry. The
// credential file and the JWT file are read again at every authentication.
//
// Fetching: Get and GetMany are bounded by FetchTimeout. Identical requests in
// flight share one call. The requests in flight at once are bounded by an
// adaptive window (window.go: it grows while Conjur's round trip stays flat,
// shrinks when it rises or Conjur answers 5xx/429) of at most MaxInFlight
// (CONJUR_SWARM_MAX_IN_FLIGHT, default 32): a request for a latest version
// that finds a slot of the window free goes out at once, alone, from the
// caller's goroutine,
// so while Conjur has spare capacity no Get waits for another; requests that
// find every slot taken gather in a queue, which goes out as one binary-safe
// batch (the request of conjurapi's RetrieveBatchSecretsSafe) of up to MaxBatch
// ids (and at most ~7 KB of query) as soon as a slot frees, so past that bound
// a burst costs one request per slot round trip. The refs of one GetMany go
// out together. Every request goes through conjurapi (RetrieveSecret,
// RetrieveSecretWithVersion, RetrieveBatchSecretsSafe) on a per-request copy
// of the endpoint's client whose token was parsed once, when it was obtained.
// A batch that fails as a whole because of some variables (403, 404, 406,
// 422) frees its slot and is narrowed down: the variable a 404 names is
// answered and the rest split in halves narrowed in parallel, so every other
// variable still arrives, each failure is reported alone, and k failures cost
// O(log n) round trips. Versioned refs go out singly.
//
// Failover: URLs are tried in order; one that fails (connection error,
// timeout, TLS, 5xx, 405, 429) is set aside with exponential backoff (0.5s
// doubling to 30s) and the request moves on to the next within the same
// deadline, each attempt but the last getting an equal share of the time left.
// 401, 403 and 404 are answers, never retried elsewhere.
//
// Every error is an *Error with a stable Code and a message that says what to
// do; the cause is kept for the log (Unwrap, %+v). No error holds a secret
// value or an API key; credential.Credential and Value redact themselves.
package conjur
