package conjurdev

// The scenarios of Conjur 1.24's cucumber API features (cucumber/api/
// features: rotate_api_key, secrets, secrets_batch, resource_list,
// check_permission, permitted_roles, members, memberships,
// policy_load_errors, policy_load_permissions, status_page), replayed
// against the dev server over HTTP. They were written here from reading
// those features and the controllers behind them; each case names the
// behaviour it pins.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"github.com/google/go-cmp/cmp"
)

// rotationPolicy is the cast of the rotation scenarios.
const rotationPolicy = `
- !policy
  id: p1
  body:
  - !layer hidden_layer
- !user bob
- !user privileged_user
- !user read_only_privileged_user
- !user not_privileged_user
- !layer host_layer
- !policy strict_policy
- !group super_users
- !host privileged_host
- !host unprivileged_host
- !permit {role: !user privileged_user, privilege: [update], resource: !user bob}
- !permit {role: !user privileged_user, privilege: [update], resource: !layer host_layer}
- !permit {role: !user privileged_user, privilege: [update], resource: !policy strict_policy}
- !permit {role: !user privileged_user, privilege: [update], resource: !group super_users}
- !permit {role: !user read_only_privileged_user, privilege: [read], resource: !layer host_layer}
- !permit {role: !user read_only_privileged_user, privilege: [read], resource: !user bob}
- !grant {role: !layer host_layer, member: !host privileged_host}
- !permit {role: !layer host_layer, privilege: [update], resource: !user bob}
`

// cast is a dev server loaded with a policy, and ways to call it as one
// of its roles.
type cast struct {
	*env
}

func newCast(t *testing.T, policy string) cast {
	t.Helper()
	e := newEnv(t)
	if policy != "" {
		if _, err := e.srv.LoadConjurPolicy(ModePatch, "root", []byte(policy)); err != nil {
			t.Fatalf("load the scenario's policy: %v", err)
		}
	}
	return cast{e}
}

// key is the current API key of a role ("user:bob").
func (c cast) key(role string) string {
	c.t.Helper()
	k, err := c.srv.APIKey(role)
	if err != nil {
		c.t.Fatal(err)
	}
	return k
}

// login turns "user:bob" into "bob" and "host:x" into "host/x".
func login(role string) string {
	kind, id, _ := strings.Cut(role, ":")
	if kind == "user" {
		return id
	}
	return kind + "/" + id
}

// token is the Authorization header of role's access token.
func (c cast) token(role string) map[string]string {
	c.t.Helper()
	return map[string]string{"Authorization": c.tokenHeader(c.client(login(role), c.key(role)))}
}

// basic is the Authorization header of role's Basic credentials.
func (c cast) basic(role string) map[string]string {
	c.t.Helper()
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(login(role)+":"+c.key(role)))}
}

// call is one request and what it must answer.
type call struct {
	name   string
	method string
	path   string
	body   string
	auth   func() map[string]string
	status int
	// body checks: exact, or contained (either or none).
	want, contains string
}

func (c cast) run(t *testing.T, calls []call) {
	t.Helper()
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.auth != nil {
				hdr = tt.auth()
			}
			m := tt.method
			if m == "" {
				m = http.MethodGet
			}
			resp, body := c.do(m, tt.path, tt.body, hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s: %d %s, want %d", m, tt.path, resp.StatusCode, body, tt.status)
			}
			if tt.want != "" && body != tt.want {
				t.Errorf("%s %s: body\n%s\nwant\n%s", m, tt.path, body, tt.want)
			}
			if tt.contains != "" && !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s: body %s, want it to contain %s", m, tt.path, body, tt.contains)
			}
		})
	}
}

func TestConjur124_rotateAPIKey(t *testing.T) {
	c := newCast(t, rotationPolicy)
	as := func(f func(string) map[string]string, role string) func() map[string]string {
		return func() map[string]string { return f(role) }
	}
	tok, basic := c.token, c.basic
	insufficient := `{"error":{"code":"unauthorized","message":"Credential strength is insufficient"}}`
	c.run(t, []call{
		{name: "ok/own-key-with-basic", method: "PUT", path: "/authn/dev/api_key", auth: as(basic, "user:bob"), status: 200},
		{name: "ok/own-key-with-basic-and-self-role", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(basic, "user:bob"), status: 200},
		{name: "fail/own-key-with-token", method: "PUT", path: "/authn/dev/api_key", auth: as(tok, "user:bob"), status: 401, want: insufficient},
		{name: "fail/own-key-with-token-and-self-role", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(tok, "user:bob"), status: 401, want: insufficient},
		{name: "fail/host-own-key-with-token", method: "PUT", path: "/authn/dev/api_key?role=host:privileged_host", auth: as(tok, "host:privileged_host"), status: 401, want: insufficient},
		{name: "ok/host-own-key-with-basic", method: "PUT", path: "/authn/dev/api_key?role=host:privileged_host", auth: as(basic, "host:privileged_host"), status: 200},
		// Basic credentials never act on another role, privileged or not
		// ("Operation attempted against foreign user", no body).
		{name: "fail/unprivileged-basic-on-bob", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(basic, "user:not_privileged_user"), status: 401, want: ""},
		{name: "fail/privileged-basic-on-bob", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(basic, "user:privileged_user"), status: 401, want: ""},
		{name: "fail/privileged-host-basic-on-bob", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(basic, "host:privileged_host"), status: 401, want: ""},
		{name: "ok/privileged-token-on-bob", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(tok, "user:privileged_user"), status: 200},
		{name: "ok/host-in-privileged-layer-token-on-bob", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(tok, "host:privileged_host"), status: 200},
		{name: "fail/unprivileged-host-token-on-bob-is-invisible", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(tok, "host:unprivileged_host"), status: 404},
		{name: "fail/read-only-token-on-bob", method: "PUT", path: "/authn/dev/api_key?role=user:bob", auth: as(tok, "user:read_only_privileged_user"), status: 403},
		{name: "fail/read-only-token-on-layer", method: "PUT", path: "/authn/dev/api_key?role=layer:host_layer", auth: as(tok, "user:read_only_privileged_user"), status: 403},
		{name: "fail/layer-has-no-key", method: "PUT", path: "/authn/dev/api_key?role=layer:host_layer", auth: as(tok, "user:privileged_user"), status: 405,
			contains: "CONJ00126E Role 'dev:layer:host_layer' is not applicable for key rotation"},
		{name: "fail/policy-has-no-key", method: "PUT", path: "/authn/dev/api_key?role=policy:strict_policy", auth: as(tok, "user:privileged_user"), status: 405},
		{name: "fail/group-has-no-key", method: "PUT", path: "/authn/dev/api_key?role=group:super_users", auth: as(tok, "user:privileged_user"), status: 405},
		{name: "fail/missing-role", method: "PUT", path: "/authn/dev/api_key?role=user:does_not_exist", auth: as(tok, "user:privileged_user"), status: 404,
			contains: "CONJ00123E Resource 'user:does_not_exist' requested by role 'dev:user:privileged_user' not found"},
		{name: "fail/invisible-role", method: "PUT", path: "/authn/dev/api_key?role=layer:p1/hidden_layer", auth: as(tok, "user:not_privileged_user"), status: 404,
			contains: "CONJ00123E Resource 'dev:layer:p1/hidden_layer' requested by role 'dev:user:not_privileged_user' not found"},
		{name: "fail/role-in-another-account", method: "PUT", path: "/authn/dev/api_key?role=nonexistent_account:user:bob", auth: as(basic, "user:bob"), status: 404},
		{name: "fail/role-without-kind", method: "PUT", path: "/authn/dev/api_key?role=bob", auth: as(tok, "user:privileged_user"), status: 422},
		{name: "fail/no-credentials", method: "PUT", path: "/authn/dev/api_key", status: 401, want: ""},
	})
	t.Run("ok/the-answer-is-the-new-key", func(t *testing.T) {
		resp, body := c.do("PUT", "/authn/dev/api_key", "", c.basic("user:bob"))
		if resp.StatusCode != 200 || body != c.key("user:bob") {
			t.Fatalf("%d: the answer is not bob's key now", resp.StatusCode)
		}
	})
}

func TestConjur124_secrets(t *testing.T) {
	c := newCast(t, `
- !group g
- !variable v
- !user reader
- !permit {role: !user reader, privilege: [read], resource: !variable v}
`)
	admin := func() map[string]string { return c.token("user:admin") }
	if err := c.srv.SetSecret("v", []byte("one")); err != nil {
		t.Fatal(err)
	}
	c.run(t, []call{
		{name: "fail/value-on-a-group-has-no-route", method: "POST", path: "/secrets/dev/group/g", body: "x", auth: admin, status: 404},
		{name: "fail/fetch-from-a-group-has-no-route", path: "/secrets/dev/group/g", auth: admin, status: 404},
		{name: "fail/version-not-an-integer", path: "/secrets/dev/variable/v?version=abc", auth: admin, status: 422,
			contains: "invalid type for parameter 'version'"},
		{name: "fail/version-zero-does-not-exist", path: "/secrets/dev/variable/v?version=0", auth: admin, status: 404, contains: "CONJ00076E"},
		{name: "fail/version-too-new", path: "/secrets/dev/variable/v?version=2", auth: admin, status: 404, contains: "CONJ00076E"},
		{name: "ok/version-one", path: "/secrets/dev/variable/v?version=1", auth: admin, status: 200, want: "one"},
		{name: "fail/read-without-execute", path: "/secrets/dev/variable/v", auth: func() map[string]string { return c.token("user:reader") }, status: 403},
		{name: "fail/blank-value", method: "POST", path: "/secrets/dev/variable/v", body: " \n", auth: admin, status: 422, contains: "'value' may not be empty"},
	})
	t.Run("ok/unchanged-value-makes-no-version", func(t *testing.T) {
		for _, v := range []string{"one", "one", "two", "two", "one"} {
			if resp, body := c.do("POST", "/secrets/dev/variable/v", v, admin()); resp.StatusCode != 201 {
				t.Fatalf("set %q: %d %s", v, resp.StatusCode, body)
			}
		}
		var got struct {
			Secrets []struct{ Version int } `json:"secrets"`
		}
		_, body := c.do("GET", "/resources/dev/variable/v", "", admin())
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Secrets) != 3 {
			t.Fatalf("versions %+v, want 3 (one, two, one)", got.Secrets)
		}
	})
}

func TestConjur124_batch(t *testing.T) {
	c := newCast(t, `
- !variable secret1
- !variable secret2
- !variable no-value
- !variable hidden
- !user bob
- !permit {role: !user bob, privilege: [read, execute], resources: [!variable secret1, !variable secret2, !variable no-value]}
`)
	for id, v := range map[string]string{"secret1": "s1", "secret2": "s2", "hidden": "h"} {
		if err := c.srv.SetSecret(id, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	bob := func() map[string]string { return c.token("user:bob") }
	q := func(ids ...string) string { return "/secrets?variable_ids=" + url.QueryEscape(strings.Join(ids, ",")) }
	c.run(t, []call{
		{name: "ok/two", path: q("dev:variable:secret1", "dev:variable:secret2"), auth: bob, status: 200,
			want: `{"dev:variable:secret1":"s1","dev:variable:secret2":"s2"}`},
		{name: "fail/missing-param", path: "/secrets", auth: bob, status: 422},
		{name: "fail/empty-param", path: "/secrets?variable_ids=", auth: bob, status: 422},
		{name: "fail/only-blanks", path: "/secrets?variable_ids=,,,", auth: bob, status: 422},
		{name: "fail/some-blanks", path: q("dev:variable:secret1", "", "", "dev:variable:secret2"), auth: bob, status: 422, contains: `"message":"variable_ids"`},
		{name: "fail/ids-not-full", path: "/secrets?variable_ids=1,2,3", auth: bob, status: 404, contains: "CONJ00076E Variable 1 is empty or not found."},
		{name: "fail/one-missing", path: q("dev:variable:secret1", "dev:variable:not-a-secret"), auth: bob, status: 404,
			contains: "CONJ00076E Variable dev:variable:not-a-secret is empty or not found."},
		{name: "fail/one-without-value", path: q("dev:variable:secret1", "dev:variable:no-value"), auth: bob, status: 404,
			contains: "CONJ00076E Variable dev:variable:no-value is empty or not found."},
		{name: "fail/no-execute", path: q("dev:variable:hidden"), auth: bob, status: 403},
		// The permission check runs on every variable found before the
		// missing ones are looked for.
		{name: "fail/missing-and-forbidden-is-403", path: q("dev:variable:not-a-secret", "dev:variable:hidden"), auth: bob, status: 403},
	})
}

func TestConjur124_resourceList(t *testing.T) {
	c := newCast(t, `
- !user alice
- !policy
  id: zone
  owner: !user alice
  body:
  - !variable target
  - !variable target.resource
  - !variable other/target
  - !variable target-resource
  - !variable plain
  - !variable annotated
  - !variable passwords
  - !variable untargeted
`)
	if _, err := c.srv.LoadConjurPolicy(ModePatch, "zone", []byte("- !variable {id: annotated, annotations: {note: the target of it}}\n")); err != nil {
		t.Fatal(err)
	}
	alice := func() map[string]string { return c.token("user:alice") }
	ids := func(t *testing.T, path string) []string {
		t.Helper()
		resp, body := c.do("GET", path, "", alice())
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		var rs []struct{ ID string }
		if err := json.Unmarshal([]byte(body), &rs); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, strings.TrimPrefix(r.ID, "dev:variable:zone/"))
		}
		return out
	}
	all := []string{"annotated", "other/target", "passwords", "plain", "target", "target-resource", "target.resource", "untargeted"}
	t.Run("ok/kind", func(t *testing.T) {
		if diff := cmp.Diff(all, ids(t, "/resources/dev/variable")); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("ok/search-is-by-word-not-substring", func(t *testing.T) {
		want := []string{"annotated", "other/target", "target", "target-resource", "target.resource"}
		if diff := cmp.Diff(want, ids(t, "/resources/dev/variable?search=target")); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("ok/search-folds-plurals", func(t *testing.T) {
		if diff := cmp.Diff([]string{"passwords"}, ids(t, "/resources/dev/variable?search=password")); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("ok/search-needs-every-word", func(t *testing.T) {
		if diff := cmp.Diff([]string{"target-resource", "target.resource"}, ids(t, "/resources/dev/variable?search=resource+target")); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("ok/limit", func(t *testing.T) {
		if got := ids(t, "/resources/dev/variable?limit=1"); len(got) != 1 {
			t.Errorf("limit=1 gave %v", got)
		}
	})
	t.Run("ok/offset-and-limit", func(t *testing.T) {
		if diff := cmp.Diff([]string{"other/target"}, ids(t, "/resources/dev/variable?offset=1&limit=1")); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("ok/offset-alone-defaults-to-10", func(t *testing.T) {
		if _, err := c.srv.LoadConjurPolicy(ModePatch, "zone", []byte(strings.Repeat("- !variable {id: more}\n", 1)+
			"- !variable m1\n- !variable m2\n- !variable m3\n- !variable m4\n- !variable m5\n")); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, "/resources/dev/variable?offset=1"); len(got) != 10 {
			t.Errorf("offset=1 of 14 gave %d, want 10", len(got))
		}
	})
	limitMsg := "'limit' contains an invalid value. 'limit' must be a positive integer."
	offsetMsg := "'offset' contains an invalid value. 'offset' must be an integer greater than or equal to 0."
	c.run(t, []call{
		{name: "fail/limit-not-numeric", path: "/resources/dev/variable?limit=abc", auth: alice, status: 422, contains: limitMsg},
		{name: "fail/limit-zero", path: "/resources/dev/variable?limit=0", auth: alice, status: 422, contains: limitMsg},
		{name: "fail/limit-negative", path: "/resources/dev/variable?limit=-10", auth: alice, status: 422, contains: limitMsg},
		{name: "fail/offset-not-numeric", path: "/resources/dev/variable?offset=abc", auth: alice, status: 422, contains: offsetMsg},
		{name: "fail/offset-negative", path: "/resources/dev/variable?offset=-10", auth: alice, status: 422, contains: offsetMsg},
		{name: "fail/offset-with-bad-limit", path: "/resources/dev/variable?offset=1&limit=abc", auth: alice, status: 422, contains: limitMsg},
		{name: "fail/limit-over-1000", path: "/resources/dev/variable?limit=1001", auth: alice, status: 422, contains: "'Limit' parameter must not exceed 1000"},
		{name: "ok/limit-10000-for-the-synchronizer", path: "/resources/dev/variable?limit=10000", auth: alice, status: 200},
		{name: "ok/count", path: "/resources/dev/variable?count=true", auth: alice, status: 200, want: `{"count":14}`},
		{name: "ok/count-ignores-the-maximum", path: "/resources/dev/variable?count=true&limit=5000", auth: alice, status: 200, want: `{"count":14}`},
		{name: "fail/role-not-held", path: "/resources/dev/variable?role=dev:user:admin", auth: alice, status: 403},
		{name: "fail/acting-as-not-held", path: "/resources/dev/variable?acting_as=dev:user:admin", auth: alice, status: 403},
		{name: "ok/admin-acting-as-alice", path: "/resources/dev/variable?acting_as=dev:user:alice&count=true", auth: func() map[string]string { return c.token("user:admin") }, status: 200, want: `{"count":14}`},
		{name: "ok/owner", path: "/resources/dev/policy?owner=user:alice&count=true", auth: func() map[string]string { return c.token("user:admin") }, status: 200, want: `{"count":1}`},
		{name: "fail/owner-missing", path: "/resources/dev/policy?owner=user:nobody", auth: alice, status: 404},
	})
}

func TestConjur124_checkPermission(t *testing.T) {
	c := newCast(t, `
- !user charlie
- !policy
  id: kitchen
  owner: !user charlie
  body:
  - !user bob
  - !policy bacon
  - !policy bacon-no-permissions
  - !permit {role: !user bob, privilege: fry, resource: !policy bacon}
`)
	charlie := func() map[string]string { return c.token("user:charlie") }
	bob := func() map[string]string { return c.token("user:bob@kitchen") }
	const bacon = "/resources/dev/policy/kitchen%2Fbacon"
	c.run(t, []call{
		{name: "ok/owner-can", path: bacon + "?check=true&privilege=fry", auth: charlie, status: 204},
		{name: "ok/for-a-role-the-caller-holds", path: bacon + "?check=true&role=dev:user:bob@kitchen&privilege=fry", auth: charlie, status: 204},
		{name: "fail/ungranted-privilege", path: bacon + "?check=true&role=dev:user:bob@kitchen&privilege=freeze", auth: charlie, status: 404},
		{name: "ok/the-role-itself", path: bacon + "?check=true&privilege=fry", auth: bob, status: 204},
		{name: "fail/missing-role", path: bacon + "?check=true&role=dev:user:bob-not-exists&privilege=fry", auth: charlie, status: 403},
		{name: "fail/role-not-held", path: bacon + "?check=true&role=dev:user:charlie&privilege=fry", auth: bob, status: 403},
		{name: "fail/missing-resource", path: "/resources/dev/policy/kitchen%2Fbacon-not-exists?check=true&role=dev:user:bob@kitchen&privilege=fry", auth: charlie, status: 404},
		{name: "fail/no-permission", path: "/resources/dev/policy/kitchen%2Fbacon-no-permissions?check=true&role=dev:user:bob@kitchen&privilege=fry", auth: charlie, status: 404},
		{name: "fail/no-privilege-param", path: bacon + "?check=true", auth: charlie, status: 422, contains: `"message":"privilege"`},
		{name: "ok/check-with-any-value", path: bacon + "?check&privilege=fry", auth: charlie, status: 204},
		{name: "fail/permitted-roles-without-privilege", path: bacon + "?permitted_roles=true", auth: charlie, status: 422},
		{name: "ok/permitted-roles", path: bacon + "?permitted_roles=true&privilege=fry", auth: charlie, status: 200,
			contains: `"dev:user:bob@kitchen"`},
	})
}

func TestConjur124_roles(t *testing.T) {
	c := newCast(t, `
- !user alice
- !user bob
- !user carol
- !user charles
- !user dave
- !grant {role: !user bob, member: !user alice}
- !grant {role: !user carol, member: !user bob}
- !grant {role: !user charles, member: !user alice}
`)
	admin := func() map[string]string { return c.token("user:admin") }
	c.run(t, []call{
		{name: "ok/all", path: "/roles/dev/user/alice?all", auth: admin, status: 200,
			want: `["dev:user:alice","dev:user:bob","dev:user:carol","dev:user:charles"]`},
		{name: "ok/all-count", path: "/roles/dev/user/alice?all&count", auth: admin, status: 200, want: `{"count":4}`},
		{name: "ok/all-filtered", path: "/roles/dev/user/alice?all=true&filter[]=dev:user:bob&filter[]=user:charles&filter[]=dev:user:dave", auth: admin, status: 200,
			want: `["dev:user:bob","dev:user:charles"]`},
		{name: "fail/filter-without-kind", path: "/roles/dev/user/alice?all&filter=bob", auth: admin, status: 422},
		{name: "ok/direct-memberships", path: "/roles/dev/user/bob?memberships", auth: admin, status: 200,
			want: `[{"admin_option":false,"ownership":false,"role":"dev:user:carol","member":"dev:user:bob","policy":"dev:policy:root"}]`},
		{name: "ok/direct-memberships-count", path: "/roles/dev/user/alice?memberships&count=true", auth: admin, status: 200, want: `{"count":2}`},
		{name: "ok/direct-memberships-search", path: "/roles/dev/user/alice?memberships&search=charles", auth: admin, status: 200,
			want: `[{"admin_option":false,"ownership":false,"role":"dev:user:charles","member":"dev:user:alice","policy":"dev:policy:root"}]`},
		{name: "ok/direct-memberships-filter", path: "/roles/dev/user/alice?memberships&filter=dev:user:bob", auth: admin, status: 200,
			contains: `"role":"dev:user:bob"`},
		{name: "ok/members-count", path: "/roles/dev/user/bob?members&count", auth: admin, status: 200, want: `{"count":2}`},
		{name: "ok/members-search", path: "/roles/dev/user/bob?members&search=alice", auth: admin, status: 200,
			want: `[{"admin_option":false,"ownership":false,"role":"dev:user:bob","member":"dev:user:alice","policy":"dev:policy:root"}]`},
		{name: "ok/members-kind", path: "/roles/dev/user/bob?members&kind[]=group", auth: admin, status: 200, want: `[]`},
		{name: "ok/members-page", path: "/roles/dev/user/bob?members&limit=1&offset=1", auth: admin, status: 200,
			contains: `"member":"dev:user:alice"`},
		{name: "fail/invisible-role", path: "/roles/dev/user/admin", auth: func() map[string]string { return c.token("user:alice") }, status: 404},
		{name: "fail/variable-is-no-role", path: "/roles/dev/variable/x", auth: admin, status: 404},
	})
	t.Run("ok/initial-members-are-the-owner", func(t *testing.T) {
		_, body := c.do("GET", "/roles/dev/user/dave", "", admin())
		var r struct {
			Members []membershipJSON `json:"members"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		want := []membershipJSON{{AdminOption: true, Ownership: true, Role: "dev:user:dave", Member: "dev:user:admin", Policy: "dev:policy:root"}}
		if diff := cmp.Diff(want, r.Members); diff != "" {
			t.Error(diff)
		}
	})
}

func TestConjur124_policyLoad(t *testing.T) {
	c := newCast(t, `
- !user read_update
- !user updater
- !policy
  id: test_policy
  owner: !user admin
  body:
  - !variable test
  - !variable inner/one
- !permit {role: !user read_update, privileges: [read, update], resource: !policy test_policy}
- !permit {role: !user updater, privileges: [read, update], resources: [!policy test_policy, !variable test_policy/test]}
`)
	admin := func() map[string]string { return c.token("user:admin") }
	c.run(t, []call{
		{name: "fail/permit-for-a-missing-role-is-invalid-policy", method: "POST", path: "/policies/dev/policy/root",
			body: "- !variable password\n- !permit {role: !user bob, privilege: [execute], resource: !variable password}\n", auth: admin, status: 422,
			want: `{"error":{"code":"policy_invalid","message":"User 'bob' not found in account 'dev'"}}`},
		{name: "fail/no-body", method: "POST", path: "/policies/dev/policy/root", auth: admin, status: 422, contains: `"message":"policy_text is not present"`},
		// PUT replaces: update on the branch alone is not enough, every
		// resource under it must allow update too.
		{name: "fail/replace-with-update-on-the-branch-only", method: "PUT", path: "/policies/dev/policy/test_policy", body: "- !variable alt\n",
			auth: func() map[string]string { return c.token("user:read_update") }, status: 403},
		{name: "ok/update-with-update-on-the-branch", method: "PATCH", path: "/policies/dev/policy/test_policy", body: "- !variable alt\n",
			auth: func() map[string]string { return c.token("user:read_update") }, status: 201},
	})
	t.Run("fail/replace-misses-one-descendant", func(t *testing.T) {
		resp, body := c.do("PUT", "/policies/dev/policy/test_policy", "- !variable test\n", c.token("user:updater"))
		if resp.StatusCode != 403 {
			t.Fatalf("%d %s, want 403 (no update on inner/one nor alt)", resp.StatusCode, body)
		}
		if _, err := c.srv.LoadConjurPolicy(ModePatch, "root", []byte("- !permit {role: !user updater, privilege: update, resources: [!variable test_policy/inner/one, !variable test_policy/alt]}\n")); err != nil {
			t.Fatal(err)
		}
		if resp, body := c.do("PUT", "/policies/dev/policy/test_policy", "- !variable test\n", c.token("user:updater")); resp.StatusCode != 201 {
			t.Fatalf("with update on every descendant: %d %s, want 201", resp.StatusCode, body)
		}
	})
}

func TestConjur124_statusAndTokens(t *testing.T) {
	c := newCast(t, "")
	c.run(t, []call{
		{name: "fail/no-health-route-in-conjur-oss", path: "/health", status: 404},
	})
	t.Run("ok/token-fields-are-url-safe-base64", func(t *testing.T) {
		resp, body := c.do("POST", "/authn/dev/admin/authenticate", adminKey, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("authenticate: %d", resp.StatusCode)
		}
		var tok tokenJSON
		if err := json.Unmarshal([]byte(body), &tok); err != nil {
			t.Fatal(err)
		}
		var hdr map[string]string
		raw, err := base64.URLEncoding.DecodeString(tok.Protected)
		if err != nil || json.Unmarshal(raw, &hdr) != nil {
			t.Fatalf("protected %q: %v", tok.Protected, err)
		}
		if hdr["typ"] != "JWT" || hdr["alg"] != "conjur.org/slosilo/v2" || hdr["kid"] == "" {
			t.Errorf("protected header %v, want alg, kid and typ JWT as slosilo writes it", hdr)
		}
		if _, err := base64.URLEncoding.DecodeString(tok.Signature); err != nil {
			t.Errorf("signature %q is not URL-safe base64: %v", tok.Signature, err)
		}
		if strings.ContainsAny(tok.Signature+tok.Payload+tok.Protected, "+/") {
			t.Errorf("a token field uses the standard alphabet: %+v", tok)
		}
	})
}

// TestPathPrefix: with a path prefix the server is shaped as Conjur Cloud
// is (everything under /api), and conjur-api-go in the SaaS environment
// authenticates and fetches through it; nothing answers outside it.
func TestPathPrefix(t *testing.T) {
	srv, err := New(Options{Account: "conjur", AdminAPIKey: adminKey, PathPrefix: "/api"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.LoadDemo("../../docs/examples"); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !strings.HasSuffix(l.URL, "/api") {
		t.Fatalf("listener URL %q lacks the prefix", l.URL)
	}
	key, _ := srv.APIKey(pluginRole)
	c, err := conjurapi.NewClientFromKey(conjurapi.Config{
		Account: "conjur", ApplianceURL: l.URL, SSLCert: string(l.CAPEM), HTTPTimeout: 10,
		CredentialStorage: conjurapi.CredentialStorageNone, Environment: conjurapi.EnvironmentSaaS,
	}, authn.LoginPair{Login: pluginLogin, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.GetHttpClient().CloseIdleConnections()
	if got, err := c.RetrieveSecret("apps/demo/db-password"); err != nil || string(got) != "demo-db-password-0001" {
		t.Fatalf("fetch under /api: %q, %v", got, err)
	}
	batch, err := c.RetrieveBatchSecretsSafe([]string{"apps/demo/db-password", "apps/demo/tls-key"})
	if err != nil || len(batch) != 2 {
		t.Fatalf("batch under /api: %v, %v", batch, err)
	}
	hc := tlsClient(l.CAPEM)
	defer hc.CloseIdleConnections()
	for _, path := range []string{"/authn/conjur/admin/authenticate", "/apix/authn/conjur/admin/authenticate"} {
		root := strings.TrimSuffix(l.URL, "/api")
		resp, err := hc.Post(root+path, "text/plain", strings.NewReader(adminKey))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s outside the prefix: %d, want 404", path, resp.StatusCode)
		}
	}
	if _, err := New(Options{PathPrefix: "api/"}); err == nil {
		t.Error("a prefix without a leading slash was accepted")
	}
}
