package conjurdev

import (
	"slices"
	"strings"
	"testing"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

func loadVia(t *testing.T, c *conjurapi.Client, mode conjurapi.PolicyMode, branch, body string) (*conjurapi.PolicyResponse, error) {
	t.Helper()
	return c.LoadPolicy(mode, branch, strings.NewReader(body))
}

func TestLoadConjurPolicy_modes(t *testing.T) {
	e := newEnv(t)
	admin := e.admin()

	// POST creates: a branch with a host, a user, a layer and a group.
	resp, err := loadVia(t, admin, conjurapi.PolicyModePost, "root", `
- !policy
  id: team
  body:
  - !user alice
  - !host ci
  - !layer runners
  - !group readers
  - &vars
    - !variable one
    - !variable two
  - !grant
    role: !layer runners
    member: !host ci
  - !grant
    role: !group readers
    member: !layer runners
  - !permit
    role: !group readers
    privileges: [read, execute]
    resources: *vars
`)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	var created []string
	for id, r := range resp.CreatedRoles {
		created = append(created, id)
		if r.ID != id || len(r.APIKey) < 20 {
			t.Errorf("created role %q = %+v, want its id and an API key", id, r)
		}
	}
	slices.Sort(created)
	if want := []string{"dev:host:team/ci", "dev:user:alice@team"}; !slices.Equal(created, want) {
		t.Fatalf("created_roles %v, want %v", created, want)
	}
	rootVersion := resp.Version // the demo loaded root already
	if rootVersion < 2 {
		t.Errorf("root version %d, want at least 2 (the demo load was 1)", rootVersion)
	}
	for _, id := range []string{"team/one", "team/two"} {
		if err := e.srv.SetSecret(id, []byte("v-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	ci := e.client("host/team/ci", resp.CreatedRoles["dev:host:team/ci"].APIKey)
	// host -> layer -> group -> permit: transitive.
	if got, err := ci.RetrieveSecret("team/one"); err != nil || string(got) != "v-team/one" {
		t.Fatalf("transitive grant: %q, %v", got, err)
	}
	alice := e.client("alice@team", resp.CreatedRoles["dev:user:alice@team"].APIKey)
	if _, err := alice.RetrieveSecret("team/one"); statusOf(err) != 404 {
		t.Fatalf("alice holds nothing: %v, want 404", err)
	}

	// POST again: nothing new is created; the version goes up.
	resp, err = loadVia(t, admin, conjurapi.PolicyModePost, "root", "- !policy team\n")
	if err != nil || len(resp.CreatedRoles) != 0 || resp.Version != rootVersion+1 {
		t.Fatalf("second POST: %+v, %v", resp, err)
	}

	// POST may not delete.
	_, err = loadVia(t, admin, conjurapi.PolicyModePost, "team", "- !delete\n  record: !variable two\n")
	if statusOf(err) != 422 || conjurErr(err).Details.Code != "validation_failed" {
		t.Fatalf("POST with !delete: %v, want 422 validation_failed", err)
	}

	// PATCH into the branch: deny, revoke and delete apply.
	_, err = loadVia(t, admin, conjurapi.PolicyModePatch, "team", `
- !deny
  role: !group readers
  privilege: execute
  resource: !variable two
- !delete
  record: !user alice
`)
	if err != nil {
		t.Fatalf("PATCH: %v", err)
	}
	if _, err := ci.RetrieveSecret("team/two"); statusOf(err) != 403 {
		t.Fatalf("after !deny execute: %v, want 403 (read remains)", err)
	}
	if _, err := e.srv.APIKey("user:alice@team"); err == nil {
		t.Fatalf("alice survived !delete")
	}
	_, err = loadVia(t, admin, conjurapi.PolicyModePatch, "team", "- !revoke\n  role: !layer runners\n  member: !host ci\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ci.RetrieveSecret("team/one"); statusOf(err) != 404 {
		t.Fatalf("after !revoke: %v, want 404", err)
	}

	// PUT replaces: records the branch defined and the document omits go.
	resp, err = loadVia(t, admin, conjurapi.PolicyModePut, "team", `
- !host ci
- !variable one
- !permit
  role: !host ci
  privilege: execute
  resource: !variable one
`)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	if len(resp.CreatedRoles) != 0 {
		t.Errorf("PUT kept host ci, created %v", resp.CreatedRoles)
	}
	if got, err := ci.RetrieveSecret("team/one"); err != nil || string(got) != "v-team/one" {
		t.Fatalf("after PUT, kept variable: %q, %v", got, err)
	}
	for _, gone := range []string{"dev:variable:team/two", "dev:group:team/readers", "dev:layer:team/runners"} {
		if ok, err := exists(admin, gone); err != nil || ok {
			t.Errorf("%s exists after PUT (%v)", gone, err)
		}
	}
}

func TestLoadConjurPolicy_language(t *testing.T) {
	e := newEnv(t)
	admin := e.admin()
	_, err := loadVia(t, admin, conjurapi.PolicyModePatch, "root", `
- !user bob
- !policy
  id: outer
  owner: !user bob
  annotations:
    description: owned by bob
  body:
  - !policy
    id: inner
    body:
    - !variable
      id: deep
      annotations: {note: "x"}
    - !user carol
  - !variable /top-level
  - !permit
    role: !user carol@outer-inner
    privilege: [execute]
    resource: !variable inner/deep
`)
	if err != nil {
		t.Fatalf("PATCH: %v", err)
	}
	res, err := admin.Resource("dev:variable:outer/inner/deep")
	if err != nil {
		t.Fatalf("relative id: %v", err)
	}
	if res["owner"] != "dev:policy:outer/inner" || res["policy"] != "dev:policy:outer/inner" {
		t.Errorf("deep owner/policy = %v/%v, want dev:policy:outer/inner", res["owner"], res["policy"])
	}
	if ok, _ := exists(admin, "dev:variable:top-level"); !ok {
		t.Errorf("absolute id /top-level not at root")
	}
	if ok, _ := exists(admin, "dev:user:carol@outer-inner"); !ok {
		t.Errorf("user in a branch is not carol@outer-inner")
	}
	pol, _ := admin.Resource("dev:policy:outer")
	if pol["owner"] != "dev:user:bob" {
		t.Errorf("owner = %v, want dev:user:bob", pol["owner"])
	}
	// bob owns outer, so (transitively) everything inside it.
	bobKey, _ := e.srv.APIKey("user:bob")
	bob := e.client("bob", bobKey)
	if err := bob.AddSecret("outer/inner/deep", "by-bob"); err != nil {
		t.Fatalf("owner sets a value: %v", err)
	}
	carolKey, _ := e.srv.APIKey("user:carol@outer-inner")
	carol := e.client("carol@outer-inner", carolKey)
	if got, err := carol.RetrieveSecret("outer/inner/deep"); err != nil || string(got) != "by-bob" {
		t.Fatalf("carol: %q, %v", got, err)
	}
	if err := carol.AddSecret("outer/inner/deep", "x"); statusOf(err) != 403 {
		t.Fatalf("carol without update: %v, want 403", err)
	}
	if ok, err := carol.CheckPermission("dev:variable:outer/inner/deep", "execute"); err != nil || !ok {
		t.Errorf("CheckPermission execute = %v, %v", ok, err)
	}
	if ok, err := carol.CheckPermission("dev:variable:outer/inner/deep", "update"); err != nil || ok {
		t.Errorf("CheckPermission update = %v, %v", ok, err)
	}
}

// emptyPolicies are valid documents that declare nothing.
var emptyPolicies = []string{"# only a comment\n", "--- []\n"}

// policyErrorTests are bad loads; FuzzParseConjurPolicy is seeded from them.
var policyErrorTests = []struct {
	name, branch, body string
	status             int
	code               string
}{
	{"fail/unknown-tag", "root", "- !secret x\n", 422, "policy_invalid"},
	{"fail/not-a-list", "root", "a: b\n", 422, "policy_invalid"},
	{"fail/unknown-attribute", "root", "- !variable {id: x, colour: red}\n", 422, "policy_invalid"},
	{"fail/missing-reference-is-invalid-policy", "root", "- !permit {role: !group nobody, privilege: read, resource: !variable apps/demo/db-password}\n", 422, "policy_invalid"},
	{"fail/missing-branch", "nowhere", "- !variable x\n", 404, "not_found"},
	{"fail/grant-to-variable", "root", "- !grant {role: !variable apps/demo/db-password, member: !host swarm/conjur-plugin}\n", 422, "policy_invalid"},
}

func TestLoadConjurPolicy_errors(t *testing.T) {
	e := newEnv(t)
	admin := e.admin()
	for _, tt := range policyErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadVia(t, admin, conjurapi.PolicyModePatch, tt.branch, tt.body)
			ce := conjurErr(err)
			if ce == nil || ce.Code != tt.status || ce.Details == nil || ce.Details.Code != tt.code {
				t.Fatalf("error %v (%+v), want %d %s", err, ce, tt.status, tt.code)
			}
		})
	}
	for _, body := range emptyPolicies {
		if _, err := loadVia(t, admin, conjurapi.PolicyModePost, "root", body); err != nil {
			t.Errorf("empty document %q: %v", body, err)
		}
	}
	for _, body := range []string{"", " \n\t"} {
		resp, got := e.do("POST", "/policies/dev/policy/root", body, map[string]string{"Authorization": e.tokenHeader(admin)})
		want := `{"error":{"code":"validation_failed","message":"policy_text is not present","details":[{"code":"validation_failed","target":"policy_text","message":"is not present"}]}}`
		if resp.StatusCode != 422 || got != want {
			t.Errorf("blank body %q: %d %s, want 422 %s", body, resp.StatusCode, got, want)
		}
	}
}

func TestLoadConjurPolicy_permissions(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	if _, err := loadVia(t, plugin, conjurapi.PolicyModePatch, "apps", "- !variable x\n"); statusOf(err) != 404 {
		t.Fatalf("plugin loads into invisible apps: %v, want 404", err)
	}
	if _, err := e.srv.LoadConjurPolicy(ModePatch, "root", []byte(`
- !permit
  role: !host swarm/conjur-plugin
  privilege: read
  resource: !policy apps
`)); err != nil {
		t.Fatal(err)
	}
	if _, err := loadVia(t, plugin, conjurapi.PolicyModePatch, "apps", "- !variable x\n"); statusOf(err) != 403 {
		t.Fatalf("plugin loads with read only: %v, want 403", err)
	}
}

func TestLoadConjurPolicy_conflict(t *testing.T) {
	e := newEnv(t)
	e.srv.loadMu.Lock() // a load in progress
	_, err := loadVia(t, e.admin(), conjurapi.PolicyModePatch, "root", "- !variable x\n")
	e.srv.loadMu.Unlock()
	if ce := conjurErr(err); ce == nil || ce.Code != 409 || ce.Details == nil || ce.Details.Code != "policy_conflict" {
		t.Fatalf("concurrent load: %v, want 409 policy_conflict", err)
	}
}

func TestResources(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	ids, err := plugin.ResourceIDs(&conjurapi.ResourceFilter{Kind: "variable"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dev:variable:apps/demo/api-token", "dev:variable:apps/demo/aws-credentials", "dev:variable:apps/demo/db-host",
		"dev:variable:apps/demo/db-password", "dev:variable:apps/demo/db-user", "dev:variable:apps/demo/read-only",
		"dev:variable:apps/demo/tls-key", "dev:variable:apps/shop/api-token", "dev:variable:apps/shop/db-password",
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("visible variables %v, want %v", ids, want)
	}
	n, err := plugin.ResourcesCount(&conjurapi.ResourceFilter{Kind: "variable", Search: "shop"})
	if err != nil || n.Count != 2 {
		t.Fatalf("count = %+v, %v; want 2", n, err)
	}
	page, err := plugin.ResourceIDs(&conjurapi.ResourceFilter{Kind: "variable", Limit: 2, Offset: 1})
	if err != nil || !slices.Equal(page, want[1:3]) {
		t.Fatalf("page = %v, %v", page, err)
	}
	if ok, err := exists(plugin, "dev:variable:restricted/admin-password"); err != nil || ok {
		t.Errorf("invisible resource exists = %v, %v", ok, err)
	}
	if _, err := plugin.Resource("dev:variable:restricted/admin-password"); statusOf(err) != 404 {
		t.Errorf("show invisible: %v, want 404", err)
	}
	r, err := plugin.Resource("dev:variable:apps/demo/db-password")
	if err != nil || r["id"] != "dev:variable:apps/demo/db-password" {
		t.Fatalf("show: %v, %v", r, err)
	}
	roles, err := e.admin().PermittedRoles("dev:variable:apps/demo/db-password", "execute")
	if err != nil || !slices.Contains(roles, "dev:host:swarm/conjur-plugin") || !slices.Contains(roles, "dev:user:admin") {
		t.Fatalf("permitted roles %v, %v", roles, err)
	}
	if ok, err := e.admin().CheckPermissionForRole("dev:variable:apps/demo/read-only", "dev:host:swarm/conjur-plugin", "execute"); err != nil || ok {
		t.Errorf("check for role = %v, %v; want false", ok, err)
	}
}

// exists asks through Client.Resource: the client's ResourceExists never
// closes the response body, which leaks a connection per call.
func exists(c *conjurapi.Client, id string) (bool, error) {
	_, err := c.Resource(id)
	switch {
	case err == nil:
		return true, nil
	case statusOf(err) == 404:
		return false, nil
	default:
		return false, err
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	all, err := e.admin().RoleMembershipsAll("dev:host:swarm/conjur-plugin")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dev:group:apps/secret-readers", "dev:host:swarm/conjur-plugin"}; !slices.Equal(all, want) {
		t.Errorf("memberships (all) %v, want %v", all, want)
	}
	members, err := e.admin().RoleMembers("dev:group:apps/secret-readers")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range members {
		ids = append(ids, m["member"].(string))
	}
	if want := []string{"dev:host:swarm/conjur-plugin", "dev:policy:apps"}; !slices.Equal(ids, want) {
		t.Errorf("members %v, want %v (the grant and the owning policy)", ids, want)
	}
	role, err := e.admin().Role("dev:host:swarm/conjur-plugin")
	if err != nil || role["id"] != "dev:host:swarm/conjur-plugin" {
		t.Fatalf("role: %v, %v", role, err)
	}
	// Conjur shows a role only when its resource is visible to the caller
	// (a privilege on it, or ownership): a host holds none on itself.
	if _, err := plugin.Role("dev:host:swarm/conjur-plugin"); statusOf(err) != 404 {
		t.Fatalf("own role without a privilege on it: %v, want 404", err)
	}
	if _, err := plugin.Role("dev:user:admin"); statusOf(err) != 404 {
		t.Fatalf("invisible role: %v, want 404", err)
	}
}

func TestDryRun(t *testing.T) {
	e := newEnv(t)
	admin := e.admin()
	before := e.srv.Counts()[EpPolicy]
	resp, err := admin.DryRunPolicy(conjurapi.PolicyModePatch, "apps", strings.NewReader(`
- !variable new/one
- !delete
  record: !variable demo/read-only
`))
	if err != nil || resp.Status != "Valid YAML" {
		t.Fatalf("dry run: %+v, %v", resp, err)
	}
	// Conjur's primitives: identifier is the full id, id the identifier.
	if len(resp.Created.Items) != 1 || resp.Created.Items[0].Id != "apps/new/one" || resp.Created.Items[0].Identifier != "dev:variable:apps/new/one" {
		t.Errorf("created %+v", resp.Created.Items)
	}
	if len(resp.Deleted.Items) != 1 || resp.Deleted.Items[0].Id != "apps/demo/read-only" {
		t.Errorf("deleted %+v", resp.Deleted.Items)
	}
	if ok, _ := exists(admin, "dev:variable:apps/new/one"); ok {
		t.Errorf("a dry run created a record")
	}
	if ok, _ := exists(admin, "dev:variable:apps/demo/read-only"); !ok {
		t.Errorf("a dry run deleted a record")
	}
	// An untagged string fails in Conjur's loader as Ruby's NoMethodError,
	// at line 0.
	untagged, err := admin.DryRunPolicy(conjurapi.PolicyModePut, "apps", strings.NewReader("- host x\n"))
	if err != nil || untagged.Status != "Invalid YAML" || len(untagged.Errors) != 1 || untagged.Errors[0].Line != 0 || untagged.Created.Items != nil ||
		!strings.Contains(untagged.Errors[0].Message, "undefined method `referenced_records'") {
		t.Fatalf("untagged dry run: %+v, %v", untagged, err)
	}
	bad, err := admin.DryRunPolicy(conjurapi.PolicyModePatch, "apps", strings.NewReader("- !nonsense x\n"))
	if err != nil || bad.Status != "Invalid YAML" || len(bad.Errors) != 1 || bad.Errors[0].Line != 1 {
		t.Fatalf("invalid dry run: %+v, %v", bad, err)
	}
	if got := e.srv.Counts()[EpPolicy] - before; got != 3 {
		t.Errorf("policy requests %d, want 3", got)
	}
}
