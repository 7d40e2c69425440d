package conjurdev

import (
	"strings"
	"testing"
)

// policyLoadErrorBodies are the answers Conjur 1.24 gives to the policy
// load errors users meet, body for body. The messages, positions and
// shapes were read in Conjur's source at v1.24.0 (PoliciesController,
// Commands::Policy::Parse, ApplicationController#policy_invalid and
// #validation_failed, PolicyVersion#validate, the policy-parser gem's
// YAML handler and resolvers) and the positions checked against that gem
// run on libyaml.
var policyLoadErrorBodies = []struct {
	name, method, branch, body string
	status                     int
	want                       string
}{
	{"fail/unknown-tag", "POST", "root", "- !secret x\n- !user y\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 1, column 0 in policy : Unrecognized data type '!secret'","innererror":{"code":"policy_invalid","filename":"policy","line":1,"column":0}}}`},
	{"fail/unknown-tag-on-mapping", "POST", "root", "- !secret\n  id: x\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 1, column 5 in policy : Unrecognized data type '!secret'","innererror":{"code":"policy_invalid","filename":"policy","line":1,"column":5}}}`},
	{"fail/unknown-attribute", "POST", "root", "- !variable\n  id: x\n  colour: red\n- !user y\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 3, column 0 in policy : No such attribute 'colour' on type Variable","innererror":{"code":"policy_invalid","filename":"policy","line":3,"column":0}}}`},
	{"fail/unknown-attribute-in-a-body", "PATCH", "root", "- !policy\n  id: p\n  body:\n  - !variable\n    id: x\n    colour: red\n  - !user y\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 6, column 2 in policy : No such attribute 'colour' on type Variable","innererror":{"code":"policy_invalid","filename":"policy","line":6,"column":2}}}`},
	{"fail/unknown-attribute-flow-style", "POST", "root", "- !variable {id: x, colour: red}\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 1, column 0 in policy : No such attribute 'colour' on type Variable","innererror":{"code":"policy_invalid","filename":"policy","line":1,"column":0}}}`},
	{"fail/unknown-attribute-quoted", "POST", "root", "- !user\n  id: a\n  colour: \"red\" # c\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 2, column 15 in policy : No such attribute 'colour' on type User","innererror":{"code":"policy_invalid","filename":"policy","line":2,"column":15}}}`},
	{"fail/unknown-attribute-of-a-statement", "POST", "root", "- !permit\n  role: !user admin\n  privilege: [read]\n  resources: !variable x\n  colour: [a, b]\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 4, column 16 in policy : No such attribute 'colour' on type Permit","innererror":{"code":"policy_invalid","filename":"policy","line":4,"column":16}}}`},
	{"fail/duplicate-attribute", "POST", "root", "- !variable\n  id: x\n  id: y\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 2, column 5 in policy : Duplicate attribute: id","innererror":{"code":"policy_invalid","filename":"policy","line":2,"column":5}}}`},
	{"fail/root-is-a-mapping", "POST", "root", "a: b\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 0, column 2 in policy : Unexpected mapping","innererror":{"code":"policy_invalid","filename":"policy","line":0,"column":2}}}`},
	{"fail/root-is-a-scalar", "POST", "root", "x\n", 422,
		`{"error":{"code":"policy_invalid","message":"Error at line 1, column 0 in policy : Unexpected scalar","innererror":{"code":"policy_invalid","filename":"policy","line":1,"column":0}}}`},
	{"fail/duplicate-record", "POST", "root", "- !layer l\n- !layer l\n", 422,
		`{"error":{"code":"policy_invalid","message":"layer 'l' is declared more than once"}}`},
	{"fail/duplicate-user-in-a-branch", "PATCH", "apps", "- !user a\n- !user a\n", 422,
		`{"error":{"code":"policy_invalid","message":"user 'a@apps' is declared more than once"}}`},
	{"fail/duplicate-host-factory", "POST", "root", "- !layer l\n- !host-factory {id: hf, layers: [!layer l]}\n- !host-factory {id: hf, layers: [!layer l]}\n", 422,
		`{"error":{"code":"policy_invalid","message":"host factory 'hf' is declared more than once"}}`},
	{"ok/same-id-other-kind", "POST", "root", "- !host h\n- !policy h\n", 201, ``},
	{"ok/same-node-twice-through-an-alias", "POST", "root", "- &vars\n  - !variable a\n  - !variable b\n- *vars\n", 201, ``},
	{"fail/missing-record", "POST", "root", "- !variable password\n\n- !permit\n  role: !user bob\n  privilege: [ execute ]\n  resource: !variable password\n", 422,
		`{"error":{"code":"policy_invalid","message":"User 'bob' not found in account 'dev'"}}`},
	{"fail/untagged-entry", "POST", "root", "- host x\n", 422,
		"{\"error\":{\"code\":\"policy_invalid\",\"message\":\"undefined method `referenced_records' for \\\"host x\\\":String\"}}"},
	{"fail/post-deletes", "POST", "root", "- !delete\n  record: !variable apps/demo/db-password\n", 422,
		`{"error":{"code":"validation_failed","message":"policy_text may not contain deletion statements","details":[{"code":"validation_failed","target":"policy_text","message":"may not contain deletion statements"}]}}`},
	{"fail/yaml-syntax-is-a-bare-500", "POST", "root", "- !variable [\n", 500, ``},
	{"fail/missing-policy", "PATCH", "nowhere", "- !variable x\n", 404,
		`{"error":{"code":"not_found","message":"Policy 'nowhere' not found in account 'dev'","target":"policy","details":{"code":"not_found","target":"id","message":"dev:policy:nowhere"}}}`},
}

func TestLoadConjurPolicy_errorBodies(t *testing.T) {
	for _, tt := range policyLoadErrorBodies {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			resp, body := e.do(tt.method, "/policies/dev/policy/"+tt.branch, tt.body, map[string]string{"Authorization": e.tokenHeader(e.admin())})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status != 201 && body != tt.want {
				t.Errorf("body\n got %s\nwant %s", body, tt.want)
			}
		})
	}
}

func TestLoadConjurPolicy_notAllowed(t *testing.T) {
	e := newEnv(t)
	if _, err := e.srv.LoadConjurPolicy(ModePatch, "root", []byte("- !permit {role: !host swarm/conjur-plugin, privilege: read, resource: !policy apps}\n")); err != nil {
		t.Fatal(err)
	}
	// The plugin sees apps but may not create or update in it: 403, no body.
	for _, method := range []string{"POST", "PATCH", "PUT"} {
		resp, body := e.do(method, "/policies/dev/policy/apps", "- !variable x\n", map[string]string{"Authorization": e.tokenHeader(e.plugin())})
		if resp.StatusCode != 403 || body != "" {
			t.Errorf("%s: %d %q, want 403 with no body", method, resp.StatusCode, body)
		}
	}
}

func TestDryRun_errorBody(t *testing.T) {
	e := newEnv(t)
	hdr := map[string]string{"Authorization": e.tokenHeader(e.admin())}
	tests := []struct{ name, body, want string }{
		{"fail/parser-error", "- !secret x\n",
			`{"status":"Invalid YAML","errors":[{"line":1,"column":0,"message":"Unrecognized data type '!secret'\nThe tag must be one of the following: !delete, !deny, !grant, !group, !host, !host-factory, !layer, !permit, !policy, !revoke, !user, !variable, !webservice","context":{"policy_id":"apps","offending_lines":[1]}}]}`},
		{"fail/resolver-error", "- !user a\n- !user a\n",
			`{"status":"Invalid YAML","errors":[{"line":null,"column":null,"message":"user 'a@apps' is declared more than once\n","context":{"policy_id":"apps","offending_lines":[]}}]}`},
		{"fail/missing-record", "- !permit {role: !user bob, privilege: read, resource: !variable demo/db-password}\n",
			`{"status":"Invalid YAML","errors":[{"line":null,"column":null,"message":"User 'bob@apps' not found in account 'dev'\n","context":{"policy_id":"apps","offending_lines":[]}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do("PATCH", "/policies/dev/policy/apps?dryRun=true", tt.body, hdr)
			if resp.StatusCode != 422 || body != tt.want {
				t.Errorf("%d\n got %s\nwant %s", resp.StatusCode, body, tt.want)
			}
		})
	}
}

// Conjur 1.24 warns when an annotation is named like a policy attribute,
// in a load's answer and a dry run's.
func TestLoadConjurPolicy_annotationWarnings(t *testing.T) {
	e := newEnv(t)
	hdr := map[string]string{"Authorization": e.tokenHeader(e.admin())}
	doc := "- !variable\n  id: w\n  annotations:\n    owner: bob\n    team: x\n    id: y\n- !host {id: h, annotations: {owner: z}}\n"
	want := `"warnings":["Annotation 'owner' matches a known policy attribute. This annotation will not be treated as a standard attribute and may not have the intended effect.","Annotation 'id' matches a known policy attribute. This annotation will not be treated as a standard attribute and may not have the intended effect."]`
	for _, path := range []string{"/policies/dev/policy/root?dryRun=true", "/policies/dev/policy/root"} {
		resp, body := e.do("POST", path, doc, hdr)
		if resp.StatusCode/100 != 2 || !strings.Contains(body, want) {
			t.Errorf("POST %s: %d %s, want %s", path, resp.StatusCode, body, want)
		}
	}
	resp, body := e.do("POST", "/policies/dev/policy/root", "- !variable {id: v, annotations: {team: x}}\n", hdr)
	if resp.StatusCode != 201 || strings.Contains(body, "warnings") {
		t.Errorf("no conflicting annotation: %d %s, want no warnings", resp.StatusCode, body)
	}
}
