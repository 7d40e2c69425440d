package bootstrap

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// FuzzAgentStatus decodes a plugin's status answer the way the agent's
// client does and judges it against the production handoff. Whatever the
// answer, the agent must not crash, and it may offer the credential only to
// a status that reports the credential's login, account and one of its URLs.
func FuzzAgentStatus(f *testing.F) {
	for _, seed := range []string{
		`{"configured":true}`,
		`{"configured":true,"conjur":null}`,
		`{"configured":true,"conjur":{"credential_source":"none"}}`,
		`{"configured":false,"config_problem":"CONJUR_ACCOUNT is not set"}`,
		`{"configured":true,"conjur":{"login":"host/swarm/conjur-plugin","account":"prod","credential_source":"none","urls":[{"url":"https://conjur.prod.example"}]}}`,
		`{"configured":true,"conjur":{"login":"host/swarm/conjur-plugin","account":"staging","credential_source":"none","urls":[{"url":"https://conjur.staging.example"}]}}`,
		`{"configured":true,"conjur":{"login":"host/swarm/conjur-plugin","account":"prod","urls":[null,{"url":"HTTPS://CONJUR.PROD.EXAMPLE:443/"}]}}`,
		`{"configured":true,"conjur":{"login":"host/swarm/conjur-plugin","account":"prod","credential_source":"handoff","credential_fingerprint":"x","urls":[{"url":"https://conjur.prod.example"}]}}`,
		`{"configured":true,"conjur":{"login":7}}`,
		`null`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	h, err := pluginapi.ParseHandoff([]byte(prodCred))
	if err != nil {
		f.Fatal(err)
	}
	fp := h.Credential.Fingerprint()
	f.Fuzz(func(t *testing.T, answer []byte) {
		var st pluginapi.Status
		if json.Unmarshal(answer, &st) != nil {
			return // the client reports "not JSON of the expected shape"
		}
		verdict, why := judge(st, h, fp)
		if verdict != outcomeHanded && verdict != outcomeCurrent {
			if why == "" {
				t.Errorf("verdict %d without a reason for %s", verdict, answer)
			}
			return
		}
		c := st.Conjur
		if c == nil || c.Login != prodLogin || c.Account != prodAccount {
			t.Fatalf("verdict %d for a status of another identity: %s", verdict, answer)
		}
		shared := false
		for _, u := range c.URLs {
			if strings.EqualFold(strings.TrimRight(credential.CanonicalURL(u.URL), "/"), prodURL) {
				shared = true
			}
		}
		if !shared {
			t.Fatalf("verdict %d for a status without the credential's URL: %s", verdict, answer)
		}
	})
}
