package reliability

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// mappingBundles is mappingV1 plus bundle rules: three seeded variables in a
// template (the binary one base64-encoded), the same with an unset or a
// forbidden member, and a json bundle that cannot hold the binary value.
const mappingBundles = mappingV1 + `  - name: rel-bundle
    match: {secret: rel_bundle}
    bundle:
      format: template
      variables: {db: apps/rel/db-password, token: apps/rel/api-token, key: apps/rel/tls-key}
      template: "{{ .db }}|{{ .token }}|{{ base64 .key }}"
  - name: rel-bundle-unset
    match: {secret: rel_bundle_unset}
    bundle:
      format: dotenv
      variables: {DB: apps/rel/db-password, UNSET: apps/rel/unset, TOKEN: apps/rel/api-token}
  - name: rel-bundle-forbidden
    match: {secret: rel_bundle_forbidden}
    bundle:
      format: yaml
      variables: {db: apps/rel/db-password, no_execute: apps/rel/no-execute}
  - name: rel-bundle-binary
    match: {secret: rel_bundle_binary}
    bundle:
      format: json
      variables: {db: apps/rel/db-password, key: apps/rel/tls-key}
`

// bundleStack is a row's stack with mappingBundles in force.
func bundleStack(t *testing.T) *stack {
	t.Helper()
	s := rowStack(t)
	s.writeMapping(mappingBundles)
	eventually(t, 10*time.Second, "the bundle mapping was not loaded", func() bool {
		return s.store.Resolve(policy.Request{SecretName: "rel_bundle"}).Bundle != nil
	})
	return s
}

// wantBundle is the rel-bundle secret, written out from the seeded values.
func (s *stack) wantBundle() []byte {
	return []byte(string(s.values[dbPassword]) + "|" + string(s.values[apiToken]) + "|" + base64.StdEncoding.EncodeToString(s.values[tlsKey]))
}

// expectMember is expectCode for a bundle: the Err names the failing member.
func (s *stack) expectMember(secret, code, member string) {
	s.t.Helper()
	errText := s.expectCode(s.request(secret, nil), code)
	if !strings.Contains(errText, `bundle member "`+member+`"`) {
		s.t.Fatalf("Err %q does not name bundle member %q", errText, member)
	}
}

// bundleRows are the fault matrix's rows for bundles (issue 13): members
// are fetched together and a failing member fails the whole Get, naming it.
func bundleRows() []matrixRow {
	return []matrixRow{
		{"ok/bundle: three members, text and binary, in one batch request", "none", func(t *testing.T) (string, string) {
			s := bundleStack(t)
			s.expectValue(s.byLabel(dbPassword), s.values[dbPassword]) // the client holds a token and is idle
			s.dev.ResetCounts()
			s.expectValue(s.request("rel_bundle", nil), s.wantBundle())
			if c := s.dev.Counts(); c[conjurdev.EpBatch] != 1 || c[conjurdev.EpSecret] != 0 {
				t.Fatalf("Conjur requests for a 3-member bundle: %v; want one batch request", c)
			}
			return "-", "-"
		}},
		{"fail/NOT_FOUND: one bundle member has no value", "apps/rel/unset has no value", func(t *testing.T) (string, string) {
			s := bundleStack(t)
			s.expectMember("rel_bundle_unset", "NOT_FOUND", "UNSET")
			s.set(t, unset, randomValue("now-set"), s.secrets)
			s.expectValue(s.request("rel_bundle_unset", nil), []byte(`DB='`+string(s.values[dbPassword])+`'`+"\n"+
				`TOKEN='`+string(s.values[apiToken])+`'`+"\n"+`UNSET='`+string(s.values[unset])+`'`+"\n"))
			return "NOT_FOUND (names the member)", "next Get after the member has a value"
		}},
		{"fail/FORBIDDEN: one bundle member lacks execute", "apps/rel/no-execute: read only", func(t *testing.T) (string, string) {
			s := bundleStack(t)
			s.expectMember("rel_bundle_forbidden", "FORBIDDEN", "no_execute")
			s.expectValue(s.request("rel_bundle", nil), s.wantBundle())
			return "FORBIDDEN (names the member)", "no value of the other member handed out; other bundles served"
		}},
		{"fail/VALUE_UNUSABLE: a binary member in a json bundle", "apps/rel/tls-key is binary", func(t *testing.T) (string, string) {
			s := bundleStack(t)
			s.expectMember("rel_bundle_binary", "VALUE_UNUSABLE", "key")
			return "VALUE_UNUSABLE (names the member)", "fix the mapping (format template with base64)"
		}},
		{"fail/UNAVAILABLE: Conjur answers 503 to a bundle", "status 503 for every request", func(t *testing.T) (string, string) {
			s := bundleStack(t)
			s.dev.Faults().SetStatus(503, 1)
			s.expectCode(s.request("rel_bundle", nil), "UNAVAILABLE")
			s.dev.Faults().Reset()
			s.expectValue(s.request("rel_bundle", nil), s.wantBundle())
			return "UNAVAILABLE", "next Get after the 503s stop"
		}},
	}
}
