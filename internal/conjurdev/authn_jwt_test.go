package conjurdev

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The rules of Conjur 1.24's authn-jwt, one case each; every refusal is
// checked by its status and by the CONJ code the server logs, as Conjur
// logs it (the answer itself is an empty 401 for most of them).

// ruleEnv is a server with authn-jwt/rules enabled, its keys and issuer
// set, and the extra policy and variable values of one case.
type ruleEnv struct {
	*env
	iss  *JWTIssuer
	logs *observer.ObservedLogs
}

const rulesBase = `
- !policy
  id: conjur/authn-jwt/rules
  body:
  - !webservice
  - !webservice status
  - !variable public-keys
  - !variable issuer
  - !group users
  - !permit
    role: !group users
    privilege: [ read, authenticate ]
    resource: !webservice
- !policy
  id: ids
  body:
  - !host
    id: blue
    annotations:
      authn-jwt/rules/project: blue
  - !host bare
- !user
  id: alice
  annotations:
    authn-jwt/rules/email: alice@example.com
- !grant
  role: !group conjur/authn-jwt/rules/users
  members: [ !host ids/blue, !host ids/bare, !user alice ]
`

func newRuleEnv(t *testing.T, policy string, vals map[string]string) *ruleEnv {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	e := newEnv(t, func(o *Options) {
		o.Authenticators = []string{"authn", "authn-jwt/rules"}
		o.Logger = zap.New(core)
	})
	iss := testIssuer(t)
	for _, doc := range []string{rulesBase, policy} {
		if doc == "" {
			continue
		}
		if _, err := e.srv.LoadConjurPolicy(ModePost, "root", []byte(doc)); err != nil {
			t.Fatalf("load %q: %v", doc, err)
		}
	}
	all := map[string]string{"public-keys": iss.PublicKeysJSON(), "issuer": iss.Issuer()}
	for k, v := range vals {
		all[k] = v
	}
	for k, v := range all {
		if err := e.srv.SetSecret("conjur/authn-jwt/rules/"+k, []byte(v)); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	return &ruleEnv{env: e, iss: iss, logs: logs}
}

// declare is a policy declaring the variables of authn-jwt/rules named.
func declare(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString("- !variable conjur/authn-jwt/rules/" + n + "\n")
	}
	return b.String()
}

// post authenticates with tok (id in the URL form when not "") and returns
// the status, the body and the reason the server logged ("" on success).
func (r *ruleEnv) post(t *testing.T, id, tok string) (int, string, string) {
	t.Helper()
	path := "/authn-jwt/rules/dev/authenticate"
	if id != "" {
		path = "/authn-jwt/rules/dev/" + url.PathEscape(id) + "/authenticate"
	}
	before := r.logs.Len()
	resp, body := r.do("POST", path, "jwt="+url.QueryEscape(tok), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	reason := ""
	if entries := r.logs.All(); len(entries) > before {
		reason, _ = entries[len(entries)-1].ContextMap()["reason"].(string)
	}
	return resp.StatusCode, body, reason
}

func (r *ruleEnv) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	tok, err := r.iss.Sign(claims, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthnJWT_conjurRules(t *testing.T) {
	tap := declare("token-app-property", "identity-path")
	tapVals := map[string]string{"token-app-property": "sub", "identity-path": "ids"}
	future := time.Now().Add(time.Hour).Unix()
	tests := []struct {
		name   string
		policy string
		vals   map[string]string
		id     string // URL form
		claims map[string]any
		status int
		code   string // CONJ code in the log; "" for success
	}{
		{name: "ok/host-from-token", policy: tap, vals: tapVals, claims: map[string]any{"sub": "blue", "project": "blue"}, status: 200},
		{name: "ok/host-in-url", id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 200},
		{name: "ok/user-in-url", id: "alice", claims: map[string]any{"email": "alice@example.com"}, status: 200},
		{name: "fail/host-without-service-annotation", id: "host/ids/bare", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00099E"},
		{name: "fail/iat-in-future", id: "host/ids/blue", claims: map[string]any{"project": "blue", "iat": future}, status: 401, code: "CONJ00035E"},
		{name: "fail/no-exp", id: "host/ids/blue", claims: map[string]any{"project": "blue", "exp": nil}, status: 401, code: "CONJ00091E"},
		{name: "fail/claim-mismatch", id: "host/ids/blue", claims: map[string]any{"project": "red"}, status: 401, code: "CONJ00049E"},
		{name: "fail/claim-missing", id: "host/ids/blue", claims: map[string]any{}, status: 401, code: "CONJ00084E"},
		{name: "fail/number-is-not-the-string", policy: "- !host\n  id: ids/n\n  annotations:\n    authn-jwt/rules/n: \"1\"\n- !grant\n  role: !group conjur/authn-jwt/rules/users\n  member: !host ids/n\n",
			id: "host/ids/n", claims: map[string]any{"n": 1}, status: 401, code: "CONJ00049E"},
		{name: "fail/tap-and-url", policy: tap, vals: tapVals, id: "host/ids/blue", claims: map[string]any{"sub": "blue", "project": "blue"}, status: 401, code: "CONJ00098E"},
		{name: "fail/neither-tap-nor-url", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00098E"},
		{name: "fail/tap-claim-missing", policy: tap, vals: tapVals, claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00081E"},
		{name: "fail/tap-claim-not-string", policy: tap, vals: tapVals, claims: map[string]any{"sub": 7, "project": "blue"}, status: 401, code: "CONJ00118E"},
		{name: "fail/tap-declared-without-value", policy: tap, vals: map[string]string{"identity-path": "ids"}, claims: map[string]any{"sub": "blue"}, status: 401, code: "CONJ00037E"},
		{name: "fail/unknown-role", id: "host/ids/nobody", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00007E"},
		{name: "fail/public-keys-with-jwks-uri", policy: declare("jwks-uri"), vals: map[string]string{"jwks-uri": "https://idp.example/jwks"}, id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00122E"},
		{name: "fail/public-keys-with-provider-uri", policy: declare("provider-uri"), vals: map[string]string{"provider-uri": "https://idp.example"}, id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00122E"},
		{name: "fail/audience-declared-wrong", policy: declare("audience"), vals: map[string]string{"audience": "conjur"}, id: "host/ids/blue", claims: map[string]any{"project": "blue", "aud": "other"}, status: 401, code: "CONJ00035E"},
		{name: "fail/audience-missing", policy: declare("audience"), vals: map[string]string{"audience": "conjur"}, id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00091E"},
		{name: "ok/audience-in-list", policy: declare("audience"), vals: map[string]string{"audience": "conjur"}, id: "host/ids/blue", claims: map[string]any{"project": "blue", "aud": []string{"x", "conjur"}}, status: 200},
		{name: "fail/enforced-claim-not-annotated", policy: declare("enforced-claims"), vals: map[string]string{"enforced-claims": "project, team"}, id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00057E"},
		{name: "fail/enforced-claims-format", policy: declare("enforced-claims"), vals: map[string]string{"enforced-claims": "project,,team"}, id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00107E"},
		{name: "fail/enforced-claims-denylisted", policy: declare("enforced-claims"), vals: map[string]string{"enforced-claims": "iss"}, id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00105E"},
		{name: "ok/claim-alias", policy: declare("claim-aliases") + "- !host\n  id: ids/aliased\n  annotations:\n    authn-jwt/rules/proj: blue\n- !grant\n  role: !group conjur/authn-jwt/rules/users\n  member: !host ids/aliased\n",
			vals: map[string]string{"claim-aliases": "proj: project"}, id: "host/ids/aliased", claims: map[string]any{"project": "blue"}, status: 200},
		{name: "fail/aliased-claim-by-its-own-name", policy: declare("claim-aliases"), vals: map[string]string{"claim-aliases": "proj:project"}, id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00069E"},
		{name: "fail/alias-name-with-slash", policy: declare("claim-aliases"), vals: map[string]string{"claim-aliases": "a/b:project"}, id: "host/ids/blue", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00114E"},
		{name: "fail/registered-claim-annotation", policy: "- !host\n  id: ids/reg\n  annotations:\n    authn-jwt/rules/iss: x\n- !grant\n  role: !group conjur/authn-jwt/rules/users\n  member: !host ids/reg\n",
			id: "host/ids/reg", claims: map[string]any{}, status: 401, code: "CONJ00069E"},
		{name: "ok/slash-claim-as-path", policy: "- !host\n  id: ids/nested\n  annotations:\n    authn-jwt/rules/ctx/stack: shop\n- !grant\n  role: !group conjur/authn-jwt/rules/users\n  member: !host ids/nested\n",
			id: "host/ids/nested", claims: map[string]any{"ctx": map[string]any{"stack": "shop"}}, status: 200},
		{name: "ok/slash-claim-literal-first", policy: "- !host\n  id: ids/nested\n  annotations:\n    authn-jwt/rules/ctx/stack: shop\n- !grant\n  role: !group conjur/authn-jwt/rules/users\n  member: !host ids/nested\n",
			id: "host/ids/nested", claims: map[string]any{"ctx/stack": "shop", "ctx": map[string]any{"stack": "other"}}, status: 200},
		{name: "ok/dot-claim-literal", policy: "- !host\n  id: ids/dotted\n  annotations:\n    authn-jwt/rules/com.docker.stack: shop\n- !grant\n  role: !group conjur/authn-jwt/rules/users\n  member: !host ids/dotted\n",
			id: "host/ids/dotted", claims: map[string]any{"com.docker.stack": "shop"}, status: 200},
		{name: "fail/dot-claim-is-not-a-path", policy: "- !host\n  id: ids/dotted\n  annotations:\n    authn-jwt/rules/com.docker.stack: shop\n- !grant\n  role: !group conjur/authn-jwt/rules/users\n  member: !host ids/dotted\n",
			id: "host/ids/dotted", claims: map[string]any{"com": map[string]any{"docker": map[string]any{"stack": "shop"}}}, status: 401, code: "CONJ00084E"},
		{name: "fail/general-annotation-does-not-count", policy: "- !host\n  id: ids/general\n  annotations:\n    authn-jwt/project: blue\n- !grant\n  role: !group conjur/authn-jwt/rules/users\n  member: !host ids/general\n",
			id: "host/ids/general", claims: map[string]any{"project": "blue"}, status: 401, code: "CONJ00099E"},
		{name: "fail/no-authenticate-privilege", policy: "- !host\n  id: ids/outsider\n  annotations:\n    authn-jwt/rules/project: blue\n",
			id: "host/ids/outsider", claims: map[string]any{"project": "blue"}, status: 403, code: "CONJ00006E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRuleEnv(t, tt.policy, tt.vals)
			status, body, reason := r.post(t, tt.id, r.sign(t, tt.claims))
			if status != tt.status || !strings.HasPrefix(reason, tt.code) || (tt.code == "") != (reason == "") {
				t.Fatalf("status %d, reason %q (body %q); want %d %s", status, reason, body, tt.status, tt.code)
			}
		})
	}
}

func TestAuthnJWT_tokenRefusals(t *testing.T) {
	r := newRuleEnv(t, "", nil)
	ok := r.sign(t, map[string]any{"project": "blue"})
	noKid := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": r.iss.Issuer(), "exp": time.Now().Add(time.Minute).Unix(), "project": "blue"})
		s, err := tok.SignedString(r.iss.key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	es256 := func() string {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": r.iss.Issuer(), "exp": time.Now().Add(time.Minute).Unix(), "project": "blue"})
		tok.Header["kid"] = r.iss.kid
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	expired := r.sign(t, map[string]any{"project": "blue", "exp": time.Now().Add(-time.Minute).Unix()})
	tests := []struct {
		name, tok, reason string
		status            int
	}{
		{"ok/signed", ok, "", 200},
		{"fail/no-kid", noKid, "CONJ00035E Failed to decode token (3rdPartyError ='#<JWT::DecodeError: No key id (kid) found from token headers>')", 401},
		{"fail/es256", es256, "CONJ00035E Failed to decode token (3rdPartyError ='#<JWT::IncorrectAlgorithm: Expected a different algorithm>')", 401},
		{"fail/tampered", ok[:len(ok)-4] + "AAAA", "CONJ00035E Failed to decode token (3rdPartyError ='#<JWT::VerificationError: Signature verification failed>')", 401},
		{"fail/not-a-jwt", "abc", "CONJ00077E The request body does not contain JWT token", 401},
		{"fail/expired", expired, "CONJ00016E Token expired", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, reason := r.post(t, "host/ids/blue", tt.tok)
			if status != tt.status || reason != tt.reason {
				t.Fatalf("status %d reason %q, want %d %q", status, reason, tt.status, tt.reason)
			}
			if tt.name == "fail/expired" {
				// The one refusal whose message Conjur sends back.
				var got map[string]map[string]string
				if err := json.Unmarshal([]byte(body), &got); err != nil || got["error"]["message"] != "CONJ00016E Token expired" || got["error"]["code"] != "unauthorized" {
					t.Fatalf("expired body %q, want Conjur's JSON error", body)
				}
			} else if status == 401 && body != "" {
				t.Fatalf("body %q, want none (Conjur answers head 401)", body)
			}
		})
	}
	// A missing jwt field is the one 400.
	resp, _ := r.do("POST", "/authn-jwt/rules/dev/host%2Fids%2Fblue/authenticate", "other=1", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != 400 {
		t.Fatalf("missing jwt: %d, want 400", resp.StatusCode)
	}
}

func TestAuthnJWT_updateAndStatusRules(t *testing.T) {
	r := newRuleEnv(t, "- !user bob\n- !user carol\n- !permit\n  role: !user carol\n  privilege: [ read, update ]\n  resource: !webservice conjur/authn-jwt/rules\n", nil)
	bob, carol := r.loginAs(t, "bob"), r.loginAs(t, "carol")
	patch := func(who, service, enabled string) int {
		resp, _ := r.do("PATCH", "/authn-jwt/"+service+"/dev", "enabled="+enabled, map[string]string{"Authorization": who, "Content-Type": "application/x-www-form-urlencoded"})
		return resp.StatusCode
	}
	if got := patch(bob, "rules", "true"); got != 403 {
		t.Errorf("bob without update: %d, want 403 (even though he cannot see the webservice)", got)
	}
	if got := patch(carol, "nope", "true"); got != 401 {
		t.Errorf("no webservice: %d, want 401 (CONJ00005E)", got)
	}
	if got := patch(carol, "rules", "yes"); got != 204 {
		t.Fatalf("carol: %d, want 204", got)
	}
	r.srv.mu.RLock()
	on := r.srv.st.apiEnabled["authn-jwt/rules"]
	r.srv.mu.RUnlock()
	if on {
		t.Errorf(`enabled=yes enabled it; Conjur takes only "true"`)
	}
	status := func(who string) (int, string) {
		resp, body := r.do("GET", "/authn-jwt/rules/dev/status", "", map[string]string{"Authorization": who})
		return resp.StatusCode, body
	}
	if code, body := status(bob); code != 403 || !strings.Contains(body, "CONJ00006E") {
		t.Errorf("status without read on the status webservice: %d %s", code, body)
	}
	admin := r.loginAs(t, "admin")
	if code, body := status(admin); code != 200 {
		t.Errorf("status: %d %s", code, body)
	}
}

// loginAs is the Authorization header of login's access token.
func (r *ruleEnv) loginAs(t *testing.T, login string) string {
	t.Helper()
	key, err := r.srv.APIKey("user:" + login)
	if err != nil {
		t.Fatal(err)
	}
	return r.tokenHeader(r.client(login, key))
}
