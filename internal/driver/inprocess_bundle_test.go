package driver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// demoEnv is what the demo's dotenv bundle (docs/examples/mapping.yml, rule
// demo-env) renders from docs/examples/values.yml.
const demoEnv = `API_TOKEN='demo-api-token-0001'
AWS_SECRET_ACCESS_KEY='demo/aws+secret=0001'
DB_HOST='db.demo.internal'
DB_PASSWORD='demo-db-password-0001'
DB_USER='demo_app'
`

func bundleReq(name, bundle string) pluginapi.Request {
	r := byLabel(name, "apps/demo/") // a service of stack demo
	r.SecretLabels = map[string]string{"conjur.bundle": bundle}
	return r
}

// TestInProcessBundleIsOneRequest: through the real socket, client and
// dev server, the demo's 5-member bundle costs exactly one Conjur request
// when the client is idle (its token already held), and its bytes are exact.
func TestInProcessBundleIsOneRequest(t *testing.T) {
	s := newStack(t)
	cfg := s.conjurConfig()
	c := s.plugin(t, &cfg)
	ctx := context.Background()
	// The first request authenticates; the bundle is then measured alone.
	if res, err := c.GetSecret(ctx, byLabel("db_password", "apps/demo/db-password")); err != nil || res.Err != "" {
		t.Fatalf("warm-up: %v %v", res, err)
	}
	s.dev.ResetCounts()
	res, err := c.GetSecret(ctx, bundleReq("demo_env", "demo-env"))
	if err != nil || res.Err != "" {
		t.Fatalf("bundle: %v %v", res, err)
	}
	if string(res.Value) != demoEnv || !res.DoNotReuse {
		t.Fatalf("bundle value %q (DoNotReuse %t), want %q", res.Value, res.DoNotReuse, demoEnv)
	}
	counts := s.dev.Counts()
	var total int64
	for _, n := range counts {
		total += n
	}
	if counts[conjurdev.EpBatch] != 1 || total != 1 {
		t.Fatalf("Conjur requests for a 5-member bundle: %v; want exactly one batch request", counts)
	}

	res, err = c.GetSecret(ctx, bundleReq("demo_dsn", "demo-dsn"))
	if err != nil || string(res.Value) != "postgres://demo_app:demo-db-password-0001@db.demo.internal:5432/demo" {
		t.Fatalf("dsn: %v %v", res, err)
	}
}

// TestInProcessBundleMemberFails: one forbidden (or missing) member fails
// the whole Get with its name and code; no value of any member reaches the
// answer, the log or the status.
func TestInProcessBundleMemberFails(t *testing.T) {
	s := newStack(t)
	mapping := filepath.Join(t.TempDir(), "mapping.yml")
	writeFile(t, mapping, `version: 1
within: [apps/]
rules:
  - name: forbidden-member
    match: {secret: with_forbidden}
    bundle:
      format: json
      variables:
        a_password: apps/demo/db-password
        b_token: apps/demo/api-token
        c_read_only: apps/demo/read-only
        d_user: apps/demo/db-user
        e_host: apps/demo/db-host
  - name: missing-member
    match: {secret: with_missing}
    bundle:
      format: dotenv
      variables: {A: apps/demo/db-password, B: apps/demo/missing}
  - name: outside-within
    match: {secret: outside}
    bundle:
      format: yaml
      variables: {a: apps/demo/db-password, b: "{secret_label:other}"}
`)
	store, err := policy.NewStore(mapping, s.log.Named("policy"))
	if err != nil {
		t.Fatal(err)
	}
	s.store = store
	cfg := s.conjurConfig()
	c := s.plugin(t, &cfg)
	ctx := context.Background()
	var errs []string
	for _, tc := range []struct {
		name string
		req  pluginapi.Request
		want string
	}{
		{"forbidden", pluginapi.Request{SecretName: "with_forbidden", ServiceName: "web"},
			`conjur-swarm [FORBIDDEN] secret "with_forbidden" (variable "apps/demo/read-only", rule "forbidden-member"): bundle member "c_read_only": `},
		{"missing", pluginapi.Request{SecretName: "with_missing", ServiceName: "web"},
			`conjur-swarm [NOT_FOUND] secret "with_missing" (variable "apps/demo/missing", rule "missing-member"): bundle member "B": `},
		{"outside within", pluginapi.Request{SecretName: "outside", SecretLabels: map[string]string{"other": "restricted/admin-password"}},
			`conjur-swarm [DENIED] secret "outside" (rule "outside-within"): rule "outside-within" denies: bundle.variables[b].within: bundle member "b": the resolved id "restricted/admin-password" is not under apps/`},
	} {
		res, err := c.GetSecret(ctx, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Value) != 0 || !strings.HasPrefix(res.Err, tc.want) {
			t.Errorf("%s: %d bytes, Err %q\nwant no value and Err starting %q", tc.name, len(res.Value), res.Err, tc.want)
		}
		errs = append(errs, res.Err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Recent) != 3 || len(st.Recent[2].Members) != 5 || st.Recent[2].Code != "FORBIDDEN" {
		t.Fatalf("status records %+v, want the forbidden bundle's 5 members", st.Recent)
	}
	statusJSON, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	values, err := conjurdev.ParseValues(mustRead(t, filepath.Join(examples, "values.yml")))
	if err != nil {
		t.Fatal(err)
	}
	text := s.logs.String() + string(statusJSON) + strings.Join(errs, "\n")
	if !strings.Contains(s.logs.String(), `"members":["apps/demo/db-password","apps/demo/api-token","apps/demo/read-only","apps/demo/db-user","apps/demo/db-host"]`) {
		t.Fatalf("the audit line does not list the member ids; the leak check would prove little:\n%s", s.logs.String())
	}
	for _, v := range values {
		for _, form := range []string{string(v), base64.StdEncoding.EncodeToString(v)} {
			if len(form) >= 8 && strings.Contains(text, form) {
				t.Errorf("a value (%d bytes) appears in the log, an Err or the status", len(v))
			}
		}
	}
}
