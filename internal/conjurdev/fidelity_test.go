package conjurdev

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

// Fidelity gaps the official client's own suite met (issue 26 item 6).

func TestRoleMembers_adminIsAMemberOfItself(t *testing.T) {
	// Conjur's grant_role_membership_to_owner trigger grants every role to
	// its owner; the admin user owns itself.
	e := newEnv(t)
	members, err := e.admin().RoleMembers("dev:user:admin")
	if err != nil || len(members) != 1 || members[0]["member"] != "dev:user:admin" {
		t.Fatalf("members of admin %v, %v; want admin itself", members, err)
	}
}

func TestPassword_changeThenLogin(t *testing.T) {
	e := newEnv(t)
	if _, err := e.srv.LoadConjurPolicy(ModePost, "root", []byte("- !user alice\n- !host box\n")); err != nil {
		t.Fatal(err)
	}
	key, _ := e.srv.APIKey("user:alice")
	hostKey, _ := e.srv.APIKey("host:box")
	const good = "Str0ng-Passw0rd!"
	put := func(login, secret, body string) int {
		req, _ := http.NewRequest(http.MethodPut, e.url+"/authn/dev/password", strings.NewReader(body))
		req.SetBasicAuth(login, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name, login, secret, body string
		status                    int
	}{
		{"fail/too-simple", "alice", key, "password", 422},
		{"fail/wrong-key", "alice", "nope", good, 401},
		{"fail/host", "host/box", hostKey, good, 403},
		{"ok/user-with-api-key", "alice", key, good, 204},
		{"ok/user-with-password", "alice", good, good + "x", 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := put(tt.login, tt.secret, tt.body); got != tt.status {
				t.Fatalf("status %d, want %d", got, tt.status)
			}
		})
	}
	// The password logs in (Basic) and gives the API key; authenticate
	// still takes only the API key.
	c := e.admin()
	got, err := c.Login("alice", good+"x")
	if err != nil || string(got) != key {
		t.Fatalf("Login with the password: %q, %v", got, err)
	}
	resp, _ := e.do("POST", "/authn/dev/alice/authenticate", good+"x", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("authenticate with the password: %d, want 401", resp.StatusCode)
	}
	tokenHdr := e.tokenHeader(e.client("alice", key))
	resp, body := e.do("PUT", "/authn/dev/password", good, map[string]string{"Authorization": tokenHdr})
	if resp.StatusCode != 401 || !strings.Contains(body, "Credential strength is insufficient") {
		t.Fatalf("with an access token: %d %s", resp.StatusCode, body)
	}
}

func TestHostFactory_tokensAndHosts(t *testing.T) {
	e := newEnv(t)
	policy := "- !layer apps\n- !host-factory\n  id: factory\n  layers: [ !layer apps ]\n"
	if _, err := e.srv.LoadConjurPolicy(ModePost, "root", []byte(policy)); err != nil {
		t.Fatal(err)
	}
	admin := e.admin()
	tokens, err := admin.CreateToken("10m", "dev:host_factory:factory", []string{"192.0.2.0/24"}, 2)
	if err != nil || len(tokens) != 2 || tokens[0].Token == tokens[1].Token || tokens[0].Cidr[0] != "192.0.2.0/24" {
		t.Fatalf("CreateToken: %+v, %v", tokens, err)
	}
	create := func(tok, xff string) (int, string) {
		hdr := map[string]string{"Authorization": `Token token="` + tok + `"`, "Content-Type": "application/x-www-form-urlencoded"}
		if xff != "" {
			hdr["X-Forwarded-For"] = xff
		}
		resp, body := e.do("POST", "/host_factories/hosts", "id=made%2Fone&annotations%5Bcreator%5D=me", hdr)
		return resp.StatusCode, body
	}
	if code, _ := create(tokens[0].Token, ""); code != 401 {
		t.Fatalf("from 127.0.0.1, outside the token's CIDR: %d, want 401", code)
	}
	code, body := create(tokens[0].Token, "192.0.2.7")
	if code != 201 || !strings.Contains(body, `"api_key"`) || !strings.Contains(body, `"owner":"dev:host_factory:factory"`) {
		t.Fatalf("from 192.0.2.7 (through a loopback proxy): %d %s", code, body)
	}
	members, err := admin.RoleMembers("dev:layer:apps")
	if err != nil || !strings.Contains(fmt.Sprint(members), "dev:host:made/one") {
		t.Fatalf("layer members %v, %v; want the new host", members, err)
	}
	if err := admin.DeleteToken(tokens[0].Token); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	if code, _ := create(tokens[0].Token, "192.0.2.7"); code != 401 {
		t.Fatalf("deleted token: %d, want 401", code)
	}
	if _, err := admin.CreateToken("10m", "dev:host_factory:nope", nil, 1); statusOf(err) != 404 {
		t.Fatalf("unknown host factory: %v, want 404", err)
	}
	plugin := e.plugin()
	if _, err := plugin.CreateToken("10m", "dev:host_factory:factory", nil, 1); statusOf(err) != 404 {
		t.Fatalf("a role that cannot see the host factory: %v, want 404", err)
	}
}

func TestResourceJSON_restrictedToAndPolicyVersions(t *testing.T) {
	// Conjur's Resource#as_json: restricted_to for users and hosts (empty
	// included), policy_versions for policies.
	e := newEnv(t)
	admin := e.admin()
	if _, err := admin.LoadPolicy(conjurapi.PolicyModePost, "root", strings.NewReader("- !policy\n  id: team\n")); err != nil {
		t.Fatal(err)
	}
	const doc = "- !host box\n"
	if _, err := admin.LoadPolicy(conjurapi.PolicyModePost, "team", strings.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	_, hostJSON := e.do("GET", "/resources/dev/host/team/box", "", map[string]string{"Authorization": e.tokenHeader(admin)})
	if !strings.Contains(hostJSON, `"restricted_to":[]`) {
		t.Errorf("host JSON %s: want restricted_to []", hostJSON)
	}
	pol, err := admin.Resource("dev:policy:team")
	if err != nil {
		t.Fatal(err)
	}
	versions, _ := pol["policy_versions"].([]any)
	if len(versions) != 1 {
		t.Fatalf("policy_versions %v, want the one load into team", pol["policy_versions"])
	}
	v := versions[0].(map[string]any)
	if v["policy_text"] != doc || v["version"] != float64(1) || v["role"] != "dev:user:admin" || v["id"] != "dev:policy:team" {
		t.Errorf("policy version %v", v)
	}
}

func TestRoutes_unknownKinds(t *testing.T) {
	// Conjur's routes constrain :kind; another kind has no route (404
	// "No route matches"), not an empty listing.
	e := newEnv(t)
	auth := map[string]string{"Authorization": e.tokenHeader(e.admin())}
	for _, path := range []string{"/resources/dev/nonsense", "/resources/dev/nonsense/x", "/roles/dev/variable/apps/demo/db-password"} {
		resp, body := e.do("GET", path, "", auth)
		if resp.StatusCode != 404 || !strings.Contains(body, "No route matches") {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	if resp, _ := e.do("GET", "/resources/dev/host_factory", "", auth); resp.StatusCode != 200 {
		t.Errorf("host_factory listing: %d", resp.StatusCode)
	}
}
