package conjurdev

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// cloudEnv is a server with one authenticator enabled and a policy
// loaded; reason is the CONJ reason of its last refusal.
type cloudEnv struct {
	*env
	logs *observer.ObservedLogs
}

func newCloudEnv(t *testing.T, authenticator, policy string, opts ...func(*Options)) *cloudEnv {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	e := newEnv(t, append([]func(*Options){func(o *Options) {
		o.Authenticators = []string{"authn", authenticator}
		o.Logger = zap.New(core)
	}}, opts...)...)
	if _, err := e.srv.LoadConjurPolicy(ModePost, "root", []byte(policy)); err != nil {
		t.Fatalf("policy: %v", err)
	}
	return &cloudEnv{env: e, logs: logs}
}

func (c *cloudEnv) reason() string {
	entries := c.logs.FilterMessage("authentication refused").All()
	if len(entries) == 0 {
		return ""
	}
	r, _ := entries[len(entries)-1].ContextMap()["reason"].(string)
	return r
}

// expectLogin checks an authentication's outcome: login wantWho when
// reason is "", else a 401 whose logged reason starts with reason.
func (c *cloudEnv) expectLogin(t *testing.T, who string, err error, wantWho, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil || who != wantWho {
			t.Fatalf("%q, %v (%s); want %s", who, err, c.reason(), wantWho)
		}
		return
	}
	if statusOf(err) != 401 || !strings.HasPrefix(c.reason(), reason) {
		t.Fatalf("%v, reason %q; want 401 %s", err, c.reason(), reason)
	}
}

// whoami authenticates c's client and returns the login Conjur sees.
func whoami(t *testing.T, client *conjurapi.Client) (string, error) {
	t.Helper()
	b, err := client.WhoAmI()
	if err != nil {
		return "", err
	}
	var who map[string]string
	if err := json.Unmarshal(b, &who); err != nil {
		t.Fatalf("whoami %s: %v", b, err)
	}
	return who["username"], nil
}

// webservicePolicy is an authenticator's webservice, its status webservice
// and a group holding authenticate, with members.
func webservicePolicy(id string, members ...string) string {
	p := "- !policy\n  id: conjur/" + id + "\n  body:\n  - !webservice\n  - !webservice status\n  - !group users\n" +
		"  - !permit\n    role: !group users\n    privilege: [ read, authenticate ]\n    resource: !webservice\n"
	for _, m := range members {
		p += "- !grant\n  role: !group conjur/" + id + "/users\n  member: " + m + "\n"
	}
	return p
}

const iamARN = "arn:aws:sts::123456789012:assumed-role/conjur-role/i-0abc"

func TestAuthnIAM(t *testing.T) {
	policy := "- !host\n  id: aws/123456789012/conjur-role\n- !host\n  id: aws/123456789012/other-role\n" +
		webservicePolicy("authn-iam/prod", "!host aws/123456789012/conjur-role", "!host aws/123456789012/other-role")
	known := IAMIdentity{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "dev-secret-key", ARN: iamARN}
	c := newCloudEnv(t, "authn-iam/prod", policy, func(o *Options) { o.IAM = []IAMIdentity{known} })
	client := func(host, secret string) *conjurapi.Client {
		cfg := c.config()
		cfg.AuthnType, cfg.ServiceID, cfg.JWTHostID = "iam", "prod", host
		cl, err := conjurapi.NewClientFromAWSCredentialsWith(cfg, &authn.IAMCredentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: secret})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	if who, err := whoami(t, client("aws/123456789012/conjur-role", "dev-secret-key")); err != nil || who != "host/aws/123456789012/conjur-role" {
		t.Fatalf("signed by the known credentials: %q, %v (%s)", who, err, c.reason())
	}
	tests := []struct{ name, host, secret, reason string }{
		{"fail/wrong-secret", "aws/123456789012/conjur-role", "guessed", "CONJ00018E Invalid or expired AWS headers: The request signature we calculated does not match"},
		{"fail/role-is-not-the-host", "aws/123456789012/other-role", "dev-secret-key", "CONJ00002E Invalid credentials"},
		{"fail/unknown-host", "aws/123456789012/nobody", "dev-secret-key", "CONJ00007E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := whoami(t, client(tt.host, tt.secret)); statusOf(err) != 401 || !strings.HasPrefix(c.reason(), tt.reason) {
				t.Fatalf("%v, reason %q; want 401 %s", err, c.reason(), tt.reason)
			}
		})
	}
	t.Run("fail/signed-too-long-ago", func(t *testing.T) {
		c.srv.clockMu.Lock()
		c.srv.clock = func() time.Time { return time.Now().Add(20 * time.Minute) }
		c.srv.clockMu.Unlock()
		defer func() { c.srv.clockMu.Lock(); c.srv.clock = time.Now; c.srv.clockMu.Unlock() }()
		if _, err := whoami(t, client("aws/123456789012/conjur-role", "dev-secret-key")); statusOf(err) != 401 || !strings.Contains(c.reason(), "Signature expired") {
			t.Fatalf("%v, reason %q", err, c.reason())
		}
	})
	t.Run("fail/unexpected-signed-header", func(t *testing.T) {
		hdrs, err := authn.IAMAuthenticateHeadersWithCredentials(&authn.IAMCredentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "dev-secret-key"})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		_ = json.Unmarshal(hdrs, &m)
		m["Authorization"] = strings.Replace(m["Authorization"], "SignedHeaders=", "SignedHeaders=x-extra;", 1)
		m["X-Extra"] = "1"
		body, _ := json.Marshal(m)
		resp, _ := c.do("POST", "/authn-iam/prod/dev/"+url.QueryEscape("host/aws/123456789012/conjur-role")+"/authenticate", string(body), nil)
		if resp.StatusCode != 401 || !strings.Contains(c.reason(), "Unexpected signed headers found: x-extra") {
			t.Fatalf("%d, reason %q", resp.StatusCode, c.reason())
		}
	})
}

func TestAuthnAzure(t *testing.T) {
	idp, err := NewJWTIssuer("https://sts.windows.net/tenant-1/")
	if err != nil {
		t.Fatal(err)
	}
	const miUser = "/subscriptions/sub-1/resourcegroups/rg-1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-id"
	const vm = "/subscriptions/sub-1/resourcegroups/rg-1/providers/Microsoft.Compute/virtualMachines/vm-1"
	host := func(id string, ann map[string]string) string {
		p := "- !host\n  id: azure/" + id + "\n  annotations:\n"
		for k, v := range ann {
			p += "    " + k + ": " + v + "\n"
		}
		return p
	}
	policy := host("app", map[string]string{"authn-azure/subscription-id": "sub-1", "authn-azure/resource-group": "rg-1", "authn-azure/prod/user-assigned-identity": "app-id"}) +
		host("vm", map[string]string{"authn-azure/prod/subscription-id": "sub-1", "authn-azure/prod/resource-group": "rg-1", "authn-azure/system-assigned-identity": "oid-vm"}) +
		host("no-rg", map[string]string{"authn-azure/subscription-id": "sub-1"}) +
		host("both", map[string]string{"authn-azure/subscription-id": "sub-1", "authn-azure/resource-group": "rg-1", "authn-azure/user-assigned-identity": "app-id", "authn-azure/system-assigned-identity": "x"}) +
		host("other-rg", map[string]string{"authn-azure/subscription-id": "sub-1", "authn-azure/resource-group": "rg-2"}) +
		webservicePolicy("authn-azure/prod", "!host azure/app", "!host azure/vm", "!host azure/no-rg", "!host azure/both", "!host azure/other-rg") +
		"- !variable conjur/authn-azure/prod/provider-uri\n"
	c := newCloudEnv(t, "authn-azure/prod", policy, func(o *Options) { o.ProviderKeys = map[string]string{idp.Issuer(): idp.JWKS()} })
	if err := c.srv.SetSecret("conjur/authn-azure/prod/provider-uri", []byte("https://sts.windows.net/tenant-1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, mirid, oid string
		reason                 string
	}{
		{"ok/user-assigned", "azure/app", miUser, "oid-x", ""},
		{"ok/system-assigned", "azure/vm", vm, "oid-vm", ""},
		{"fail/required-resource-group-missing", "azure/no-rg", miUser, "oid-x", "CONJ00057E"},
		{"fail/both-identity-kinds", "azure/both", miUser, "oid-x", "CONJ00055E"},
		{"fail/other-resource-group", "azure/other-rg", miUser, "oid-x", "CONJ00049E"},
		{"fail/bad-xms-mirid", "azure/app", "/subscriptions/sub-1/providers/a/b/c", "oid-x", "CONJ00053E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := idp.Sign(map[string]any{"xms_mirid": tt.mirid, "oid": tt.oid}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			cfg := c.config()
			cfg.AuthnType, cfg.ServiceID, cfg.JWTHostID, cfg.JWTContent = "azure", "prod", tt.host, tok
			cl, err := conjurapi.NewClientFromAzureCredentials(cfg)
			if err != nil {
				t.Fatal(err)
			}
			who, err := whoami(t, cl)
			c.expectLogin(t, who, err, "host/"+tt.host, tt.reason)
		})
	}
}

func TestAuthnGCP(t *testing.T) {
	google, err := NewJWTIssuer(gcpIssuer)
	if err != nil {
		t.Fatal(err)
	}
	policy := "- !host\n  id: gcp/app\n  annotations:\n    authn-gcp/project-id: proj-1\n    authn-gcp/instance-name: vm-1\n" +
		"- !host\n  id: gcp/only-instance\n  annotations:\n    authn-gcp/instance-name: vm-1\n" +
		"- !host\n  id: gcp/zone\n  annotations:\n    authn-gcp/project-id: proj-1\n    authn-gcp/zone: z\n" +
		"- !webservice conjur/authn-gcp\n- !webservice conjur/authn-gcp/status\n" +
		"- !permit\n  role: !host gcp/app\n  privilege: authenticate\n  resource: !webservice conjur/authn-gcp\n" +
		"- !permit\n  role: !host gcp/only-instance\n  privilege: authenticate\n  resource: !webservice conjur/authn-gcp\n" +
		"- !permit\n  role: !host gcp/zone\n  privilege: authenticate\n  resource: !webservice conjur/authn-gcp\n"
	c := newCloudEnv(t, "authn-gcp", policy, func(o *Options) { o.ProviderKeys = map[string]string{gcpIssuer: google.JWKS()} })
	compute := map[string]any{"compute_engine": map[string]any{"project_id": "proj-1", "instance_name": "vm-1"}}
	tests := []struct {
		name   string
		claims map[string]any
		reason string
	}{
		{"ok/compute-engine", map[string]any{"aud": "conjur/dev/host/gcp/app", "sub": "1234", "google": compute}, ""},
		{"fail/other-project", map[string]any{"aud": "conjur/dev/host/gcp/app", "sub": "1234", "google": map[string]any{"compute_engine": map[string]any{"project_id": "p2", "instance_name": "vm-1"}}}, "CONJ00049E"},
		{"fail/claim-missing", map[string]any{"aud": "conjur/dev/host/gcp/app", "sub": "1234"}, "CONJ00068E"},
		{"fail/audience-format", map[string]any{"aud": "host/gcp/app", "sub": "1234", "google": compute}, "CONJ00067E"},
		{"fail/audience-account", map[string]any{"aud": "conjur/other/host/gcp/app", "sub": "1234", "google": compute}, "CONJ00070E"},
		{"fail/iat-in-future", map[string]any{"aud": "conjur/dev/host/gcp/app", "sub": "1234", "google": compute, "iat": time.Now().Add(time.Hour).Unix()}, "CONJ00035E"},
		{"fail/instance-name-alone", map[string]any{"aud": "conjur/dev/host/gcp/only-instance", "sub": "1234", "google": compute}, "CONJ00069E"},
		{"fail/unsupported-annotation", map[string]any{"aud": "conjur/dev/host/gcp/zone", "sub": "1234", "google": compute}, "CONJ00050E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := google.Sign(tt.claims, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			cfg := c.config()
			cfg.AuthnType, cfg.JWTContent = "gcp", tok
			cl, err := conjurapi.NewClientFromGCPCredentials(cfg, "")
			if err != nil {
				t.Fatal(err)
			}
			who, err := whoami(t, cl)
			c.expectLogin(t, who, err, "host/gcp/app", tt.reason)
		})
	}
}
