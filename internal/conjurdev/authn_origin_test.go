package conjurdev

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

// The tests below reach the dev server from 127.0.0.1, a proxy Conjur
// trusts: without X-Forwarded-For the client is 127.0.0.1, with it the
// last address the header names.

const originPolicy = `
- !policy
  id: origin
  body:
  - !host
    id: local
    restricted_to: 127.0.0.1
  - !host
    id: elsewhere
    restricted_to: [10.0.0.0/8, 192.0.2.0/24]
  - !host open
  - !user
    id: bob
    restricted_to: 10.1.0.0/16
`

func originEnv(t *testing.T) (*env, map[string]string) {
	t.Helper()
	e := newEnv(t)
	resp, err := loadVia(t, e.admin(), conjurapi.PolicyModePost, "root", originPolicy)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	keys := map[string]string{}
	for id, r := range resp.CreatedRoles {
		keys[id] = r.APIKey
	}
	return e, keys
}

func TestRestrictedTo_authenticate(t *testing.T) {
	e, keys := originEnv(t)
	tests := []struct {
		name, login, role, xff string
		want                   int
	}{
		{"ok/inside-single-address", "host/origin/local", "dev:host:origin/local", "", 200},
		{"ok/unrestricted", "host/origin/open", "dev:host:origin/open", "", 200},
		{"ok/forwarded-from-inside", "host/origin/elsewhere", "dev:host:origin/elsewhere", "10.20.30.40", 200},
		{"ok/forwarded-second-range", "host/origin/elsewhere", "dev:host:origin/elsewhere", "192.0.2.7", 200},
		{"ok/user-forwarded-inside", "bob@origin", "dev:user:bob@origin", "10.1.2.3", 200},
		{"fail/loopback-outside", "host/origin/elsewhere", "dev:host:origin/elsewhere", "", 401},
		{"fail/forwarded-outside", "host/origin/local", "dev:host:origin/local", "198.51.100.1", 401},
		{"fail/user-outside", "bob@origin", "dev:user:bob@origin", "10.2.0.1", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.xff != "" {
				hdr["X-Forwarded-For"] = tt.xff
			}
			resp, body := e.do("POST", "/authn/dev/"+url.PathEscape(tt.login)+"/authenticate", keys[tt.role], hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want == 401 && body != "" {
				t.Errorf("refusal body %q, want none (Conjur answers an empty 401)", body)
			}
		})
	}
}

func TestRestrictedTo_officialClient(t *testing.T) {
	e, keys := originEnv(t)
	local := e.client("host/origin/local", keys["dev:host:origin/local"])
	if _, err := local.WhoAmI(); err != nil {
		t.Errorf("host restricted to 127.0.0.1, from 127.0.0.1: %v", err)
	}
	far := e.client("host/origin/elsewhere", keys["dev:host:origin/elsewhere"])
	if _, err := far.WhoAmI(); statusOf(err) != 401 {
		t.Errorf("host restricted to 10.0.0.0/8 and 192.0.2.0/24, from 127.0.0.1: %v, want 401", err)
	}
	// Conjur checks the origin when it issues a token, not at Basic login.
	if resp, body := e.do("GET", "/authn/dev/login", "", map[string]string{"Authorization": basicAuth("host/origin/elsewhere", keys["dev:host:origin/elsewhere"])}); resp.StatusCode != 200 {
		t.Errorf("Basic login from outside: %d %q, want 200", resp.StatusCode, body)
	}
}

func TestRestrictedTo_storedAsConjurDoes(t *testing.T) {
	e, _ := originEnv(t)
	admin := e.admin()
	restricted := func(id string) []string {
		t.Helper()
		res, err := admin.Resource(id)
		if err != nil {
			t.Fatalf("Resource %s: %v", id, err)
		}
		b, _ := json.Marshal(res["restricted_to"])
		var out []string
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("restricted_to of %s: %s", id, b)
		}
		return out
	}
	steps := []struct {
		name string
		mode conjurapi.PolicyMode
		body string
		want []string
	}{
		{"loaded", 0, "", []string{"10.0.0.0/8", "192.0.2.0/24"}},
		{"post-adds", conjurapi.PolicyModePost, "- !host {id: elsewhere, restricted_to: 203.0.113.5}\n", []string{"10.0.0.0/8", "192.0.2.0/24", "203.0.113.5/32"}},
		{"patch-replaces", conjurapi.PolicyModePatch, "- !host {id: elsewhere, restricted_to: [2001:db8::/32]}\n", []string{"2001:db8::/32"}},
		{"patch-without-lifts", conjurapi.PolicyModePatch, "- !host elsewhere\n", []string{}},
	}
	for _, st := range steps {
		if st.mode != 0 {
			if _, err := loadVia(t, admin, st.mode, "origin", st.body); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		if got := restricted("dev:host:origin/elsewhere"); !slices.Equal(got, st.want) {
			t.Errorf("%s: restricted_to %v, want %v", st.name, got, st.want)
		}
	}
}

func TestRestrictedTo_policyErrors(t *testing.T) {
	e := newEnv(t)
	hdr := map[string]string{"Authorization": e.tokenHeader(e.admin())}
	tests := []struct{ name, body, want string }{
		{"fail/bits-right-of-mask", "- !host\n  id: a\n  restricted_to: 10.0.0.1/24\n",
			"Error at line 3, column 0 in policy : Invalid IP address or CIDR range '10.0.0.1/24': Value has bits set to right of mask. Did you mean '10.0.0.0/24'?"},
		{"fail/host-name", "- !host\n  id: a\n  restricted_to: dap.my-company.net\n",
			"Error at line 3, column 0 in policy : Invalid IP address or CIDR range 'dap.my-company.net'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do("POST", "/policies/dev/policy/root", tt.body, hdr)
			var got struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 422 ||
				got.Error.Code != "policy_invalid" || got.Error.Message != tt.want {
				t.Fatalf("%d %s, want 422 policy_invalid %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}

func basicAuth(login, key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(login+":"+key))
}

// The check applies to every authenticator, authn-jwt here, after its own
// rules: the same valid token is refused once the host is restricted to a
// network the client is not in.
func TestRestrictedTo_authnJWT(t *testing.T) {
	e, iss := jwtEnv(t, "")
	tok, err := iss.Sign(map[string]any{"sub": "anything", "aud": "conjur-swarm"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	host := "host/swarm/conjur-plugin"
	if _, err := e.jwtClient(tok, host).WhoAmI(); err != nil {
		t.Fatalf("unrestricted: %v", err)
	}
	patch := "- !host\n  id: swarm/conjur-plugin\n  annotations:\n    authn-jwt/swarm/sub: anything\n  restricted_to: [10.0.0.0/8]\n"
	if _, err := loadVia(t, e.admin(), conjurapi.PolicyModePatch, "root", patch); err != nil {
		t.Fatal(err)
	}
	if _, err := e.jwtClient(tok, host).WhoAmI(); statusOf(err) != 401 {
		t.Errorf("restricted to 10.0.0.0/8, from 127.0.0.1: %v, want 401", err)
	}
	form := "jwt=" + url.QueryEscape(tok)
	resp, body := e.do("POST", "/authn-jwt/swarm/dev/"+url.PathEscape(host)+"/authenticate", form,
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": "10.9.8.7"})
	if resp.StatusCode != 200 {
		t.Errorf("restricted to 10.0.0.0/8, forwarded from 10.9.8.7: %d %q, want 200", resp.StatusCode, body)
	}
}
