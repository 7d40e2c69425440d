package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const servicePolicy = `version: 1
within: [apps/]
rules:
  - name: pinned-node
    match:
      secret: "pin_*"
      node: "node-a"
    variable: "apps/pinned/{secret_key}"
  - name: by-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
  - name: per-node
    match:
      secret: "node_*"
    variable: "apps/nodes/{node}"
  - name: node-allow
    match:
      secret: "guarded_*"
    variable: "apps/guarded/{secret}"
    allow:
      node: "node-*"
  - name: node-in-allow-template
    match:
      secret: "tmpl_*"
    variable: "apps/tmpl/{secret}"
    allow:
      service: "{node}-svc"
  - name: node-bundle
    match:
      secret: "nb_*"
    bundle:
      format: json
      variables:
        a: "apps/b/{secret}"
        b: "apps/b/{node}"
  - name: stack
    match:
      secret_labels: {com.docker.stack.namespace: "*"}
    variable: "apps/{stack}/{secret_key}"
    allow:
      service_labels: {com.docker.stack.namespace: "{stack}"}
`

func TestResolveService(t *testing.T) {
	p, err := Parse("service.yml", []byte(servicePolicy))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		Allow    bool
		Rule     string
		Variable string
		NodeDep  bool
	}
	tests := []struct {
		name string
		req  Request
		want want
	}{
		{"ok/label rule after a node rule whose other conditions fail",
			Request{SecretName: "db", SecretLabels: map[string]string{"conjur.variable": "apps/db/pw"}, NodeID: "ignored"},
			want{Allow: true, Rule: "by-label", Variable: "apps/db/pw"}},
		{"ok/stack rule decided without the node",
			Request{SecretName: "web_key", SecretLabels: map[string]string{"com.docker.stack.namespace": "web"}, ServiceLabels: map[string]string{"com.docker.stack.namespace": "web"}},
			want{Allow: true, Rule: "stack", Variable: "apps/web/key"}},
		{"ok/a deny that does not read the node",
			Request{SecretName: "web_key", SecretLabels: map[string]string{"com.docker.stack.namespace": "web"}, ServiceLabels: map[string]string{"com.docker.stack.namespace": "billing"}},
			want{Rule: "stack", Variable: "apps/web/key"}},
		{"ok/no rule matches",
			Request{SecretName: "other"},
			want{}},
		{"node/a match on the node that could hold",
			Request{SecretName: "pin_a", NodeID: "node-a"},
			want{Rule: "pinned-node", NodeDep: true}},
		{"node/variable reads the node",
			Request{SecretName: "node_x"},
			want{Rule: "per-node", NodeDep: true}},
		{"node/allow on the node",
			Request{SecretName: "guarded_x"},
			want{Rule: "node-allow", Variable: "apps/guarded/guarded_x", NodeDep: true}},
		{"node/a bundle member reads the node",
			Request{SecretName: "nb_x"},
			want{Rule: "node-bundle", NodeDep: true}},
		{"node/allow template reads the node",
			Request{SecretName: "tmpl_x", ServiceName: "a-svc"},
			want{Rule: "node-in-allow-template", Variable: "apps/tmpl/tmpl_x", NodeDep: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, dep := p.ResolveService(tt.req)
			got := want{Allow: d.Allow, Rule: d.Rule, Variable: d.Variable, NodeDep: dep}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ResolveService(%+v) (-want +got):\n%s\nreason: %s", tt.req, diff, d.Reason)
			}
		})
	}
}

// For a request whose outcome does not depend on the node, ResolveService
// decides exactly as Resolve does.
func TestResolveServiceAgreesWithResolve(t *testing.T) {
	p, err := Parse("service.yml", []byte(servicePolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{
		{SecretName: "db", SecretLabels: map[string]string{"conjur.variable": "apps/db/pw"}},
		{SecretName: "db", SecretLabels: map[string]string{"conjur.variable": "other/x"}},
		{SecretName: "web_key", SecretLabels: map[string]string{"com.docker.stack.namespace": "web"}, ServiceLabels: map[string]string{"com.docker.stack.namespace": "billing"}},
		{SecretName: "nothing"},
	} {
		got, dep := p.ResolveService(req)
		if dep {
			t.Fatalf("ResolveService(%+v) says node-dependent", req)
		}
		if diff := cmp.Diff(p.Resolve(req), got); diff != "" {
			t.Errorf("ResolveService(%+v) differs from Resolve (-Resolve +ResolveService):\n%s", req, diff)
		}
	}
}
