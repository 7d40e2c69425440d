package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBundleRecipes loads the bundle and field recipes of docs/mapping.md
// and checks the decisions, member ids and rendered bytes the document
// shows for them.
func TestBundleRecipes(t *testing.T) {
	stack := func(stack, key, serviceStack string) Request {
		return Request{SecretName: stack + "_" + key, SecretLabels: labels(stackLabel, stack),
			ServiceName: serviceStack + "_api", ServiceLabels: labels(stackLabel, serviceStack)}
	}
	// config is a secret labelled conjur.config=app used by a service of
	// stack serviceStack, whose stack file also labels it conjur.config=app
	// (a stack file sets any label but the stack's).
	config := func(app, serviceStack string) Request {
		return Request{SecretName: "config", SecretLabels: labels("conjur.config", app),
			ServiceName: serviceStack + "_api", ServiceLabels: labels(stackLabel, serviceStack, "conjur.config", app)}
	}
	type claim struct {
		name     string
		req      Request
		allow    bool
		rule     string
		cond     string
		members  []string // the member ids, by member name; for a single variable its id
		values   []string // fetched values in member order (nil: not rendered)
		rendered string
	}
	recipes := []struct {
		file   string
		claims []claim
	}{
		{"examples/mapping-recipes/dsn-template.yml", []claim{
			{"ok/own-stack", stack("shop", "db_dsn", "shop"), true, "db-dsn", "",
				[]string{"apps/shop/db/host", "apps/shop/db/password", "apps/shop/db/user"},
				[]string{"db.shop.internal", "p@ss:w/rd", "shop_app"},
				"postgres://shop_app:p%40ss%3Aw%2Frd@db.shop.internal:5432/app?sslmode=verify-full"},
			{"fail/other-stack", stack("shop", "db_dsn", "web"), false, "db-dsn", "allow.service_labels[com.docker.stack.namespace]",
				[]string{"apps/shop/db/host", "apps/shop/db/password", "apps/shop/db/user"}, nil, ""},
			{"fail/stack-label-climbs", stack("..", "db_dsn", ".."), false, "db-dsn", "bundle.variables[host]", nil, nil, ""},
		}},
		{"examples/mapping-recipes/dotenv-file.yml", []claim{
			{"ok/own-stack", stack("shop", "env", "shop"), true, "app-env", "",
				[]string{"apps/shop/api-token", "apps/shop/db/password", "shared/smtp/password"},
				[]string{"tok-1", `s3cr"t$1`, "line1\nline2"},
				"API_TOKEN='tok-1'\nDB_PASSWORD='s3cr\"t$1'\nSMTP_PASSWORD='line1\nline2'\n"},
			{"fail/other-stack", stack("shop", "env", "web"), false, "app-env", "allow.service_labels[com.docker.stack.namespace]",
				[]string{"apps/shop/api-token", "apps/shop/db/password", "shared/smtp/password"}, nil, ""},
		}},
		{"examples/mapping-recipes/json-config.yml", []claim{
			{"ok/same-app", config("billing", "billing"), true, "app-config", "",
				[]string{"apps/billing/api-token", "apps/billing/db/password", "apps/billing/db/user"},
				[]string{"t-1", `p"w`, "billing"},
				`{"api_token":"t-1","db_password":"p\"w","db_user":"billing"}`},
			{"fail/other-stack", config("billing", "shop"), false, "app-config", "allow.service_labels[com.docker.stack.namespace]",
				[]string{"apps/billing/api-token", "apps/billing/db/password", "apps/billing/db/user"}, nil, ""},
			{"fail/label-climbs", config("../restricted", "../restricted"), false, "app-config", "bundle.variables[api_token]", nil, nil, ""},
		}},
		{"examples/mapping-recipes/dynamic-secret-field.yml", []claim{
			{"ok/secret-access-key", stack("shop", "aws_secret_access_key", "shop"), true, "aws-secret-access-key", "",
				[]string{"apps/shop/aws/credentials"},
				[]string{`{"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"wJalr/EXAMPLEKEY","Expiration":"2026-12-01T00:00:00Z"}`},
				"wJalr/EXAMPLEKEY"},
			{"ok/access-key-id", stack("shop", "aws_access_key_id", "shop"), true, "aws-access-key-id", "",
				[]string{"apps/shop/aws/credentials"},
				[]string{`{"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"wJalr/EXAMPLEKEY","Expiration":"2026-12-01T00:00:00Z"}`},
				"AKIAEXAMPLE"},
			{"ok/tls-key-decoded", stack("shop", "tls_key", "shop"), true, "tls-key", "",
				[]string{"apps/shop/tls/key-base64"}, []string{"LS0tLS1CRUdJTiBLRVktLS0tLQo="}, "-----BEGIN KEY-----\n"},
			{"fail/other-stack", stack("shop", "aws_secret_access_key", "web"), false, "aws-secret-access-key",
				"allow.service_labels[com.docker.stack.namespace]", []string{"apps/shop/aws/credentials"}, nil, ""},
		}},
	}
	for _, rc := range recipes {
		t.Run(rc.file, func(t *testing.T) {
			p := loadRecipe(t, rc.file)
			for _, c := range rc.claims {
				t.Run(c.name, func(t *testing.T) {
					d := p.Resolve(c.req)
					if d.Allow != c.allow || d.Rule != c.rule || d.Condition != c.cond {
						t.Fatalf("got allow=%v rule=%q condition=%q (%s)\nwant allow=%v rule=%q condition=%q",
							d.Allow, d.Rule, d.Condition, d.Reason, c.allow, c.rule, c.cond)
					}
					if diff := cmp.Diff(c.members, d.Variables()); diff != "" {
						t.Errorf("variables (-want +got):\n%s", diff)
					}
					if c.values == nil {
						return
					}
					vals := make([][]byte, len(c.values))
					for i, v := range c.values {
						vals[i] = []byte(v)
					}
					out, err := d.Render(vals)
					if err != nil || string(out) != c.rendered {
						t.Errorf("Render = %q, %v\nwant %q", out, err, c.rendered)
					}
				})
			}
		})
	}
}
