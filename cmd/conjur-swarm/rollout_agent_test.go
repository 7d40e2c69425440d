package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/rollout"
)

// statusSocket serves st as a rollout agent's status on a unix socket.
func statusSocket(t *testing.T, st rollout.Status) string {
	t.Helper()
	return serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != rollout.StatusPath {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
}

func TestRolloutStatusGolden(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	busy := rollout.Status{
		Started: at, LastPass: at.Add(5 * time.Minute), Interval: "30s", MinGap: "2m0s", Primed: true,
		Error: &rollout.Problem{Code: "UNAVAILABLE", Message: "no Conjur appliance answered", Since: at.Add(4 * time.Minute)},
		Services: []rollout.ServiceStatus{
			{Name: "shop_web", ID: "svc1", Variables: []rollout.VariableStatus{
				{ID: "apps/shop/api-token", Secrets: []string{"shop_api-token"}, Version: 3, Rolled: 3},
				{ID: "apps/shop/db-password", Secrets: []string{"shop_db-password"}, Version: 5, Rolled: 4},
			}, Pending: "min-gap: the service was last updated at 2026-11-30T12:04:00Z, next rollout from 2026-11-30T12:06:00Z",
				LastRollout: &rollout.Rollout{At: at.Add(4 * time.Minute), Reason: "a variable's version rose",
					Changes: []rollout.Change{{Variable: "apps/shop/db-password", From: 3, To: 4}}}},
			{Name: "worker", ID: "svc2", Variables: []rollout.VariableStatus{}},
		},
		Problems: []rollout.Problem{{Code: "NODE_DEPENDENT", Message: `service edge, secret node_cert: rule "per-node" reads the node, so its variable is not known per service; not watched (roll it by hand after a rotation)`}},
	}
	fresh := rollout.Status{Started: at, Interval: "30s", MinGap: "2m0s", DryRun: true, Services: []rollout.ServiceStatus{}}
	tests := []struct {
		name string
		args func(sock string) []string
		st   rollout.Status
		code int
	}{
		{"status-busy", func(s string) []string { return []string{"rollout-agent", "status", "--socket", s} }, busy, 0},
		{"status-fresh-dry-run", func(s string) []string { return []string{"rollout-agent", "status", "--socket", s} }, fresh, 0},
		{"status-no-agent", func(string) []string {
			return []string{"rollout-agent", "status", "--socket", "/nonexistent/rollout.sock"}
		}, fresh, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sock := statusSocket(t, tc.st)
			got := strings.ReplaceAll(runCLI(tc.args(sock)...), sock, "STATUS_SOCKET")
			if want := fmt.Sprintf("exit status %d\n", tc.code); !strings.Contains(got, want) {
				t.Errorf("want %q in:\n%s", want, got)
			}
			checkGolden(t, filepath.Join("rollout", tc.name+".golden"), got)
		})
	}
}

// Without Conjur settings the agent refuses to start and names what to set.
func TestRolloutAgentNeedsConjurSettings(t *testing.T) {
	t.Setenv("CONJUR_APPLIANCE_URL", "")
	t.Setenv("CONJUR_ACCOUNT", "")
	got := runCLI("rollout-agent", "--status-socket", filepath.Join(t.TempDir(), "s.sock"))
	for _, want := range []string{"exit status 1", "CONJUR_APPLIANCE_URL", "CONJUR_ACCOUNT"} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
}

// TestRolloutAgentIAMLogin: the rollout agent's Conjur client, built from
// the shared settings as runRolloutAgent builds it, logs in with
// CONJUR_AUTHN_TYPE=iam and AWS credentials from the environment (the dev
// server's stand-in for STS verifies the signature) and reads versions.
func TestRolloutAgentIAMLogin(t *testing.T) {
	id := conjurdev.IAMIdentity{AccessKeyID: "ASIAROLLOUTEXAMPLE", SecretAccessKey: "rollout-secret-key", SessionToken: "rollout-session-token",
		ARN: "arn:aws:sts::123456789012:assumed-role/swarm-rollout/i-0abc"}
	dev, err := conjurdev.New(conjurdev.Options{Authenticators: []string{"authn", "authn-iam/prod"}, IAM: []conjurdev.IAMIdentity{id}})
	if err != nil {
		t.Fatal(err)
	}
	policy := `- !host rollout/123456789012/swarm-rollout
- !variable apps/db
- !webservice conjur/authn-iam/prod
- !permit
  role: !host rollout/123456789012/swarm-rollout
  privilege: authenticate
  resource: !webservice conjur/authn-iam/prod
- !permit
  role: !host rollout/123456789012/swarm-rollout
  privilege: read
  resource: !variable apps/db
`
	if _, err := dev.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(policy)); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := dev.SetSecret("apps/db", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := dev.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg, err := load(t, map[string]string{"CONJUR_APPLIANCE_URL": l.URL, "CONJUR_ACCOUNT": dev.Account(), "CONJUR_SWARM_ALLOW_HTTP": "true",
		"CONJUR_AUTHN_TYPE": "iam", "CONJUR_SERVICE_ID": "prod", "CONJUR_AUTHN_LOGIN": "host/rollout/123456789012/swarm-rollout",
		"AWS_ACCESS_KEY_ID": id.AccessKeyID, "AWS_SECRET_ACCESS_KEY": id.SecretAccessKey.Reveal(), "AWS_SESSION_TOKEN": id.SessionToken.Reveal()})
	if err != nil {
		t.Fatal(err)
	}
	client, err := conjur.New(cfg.conjurConfig(nil), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	got, err := client.Versions(t.Context(), "", []string{"apps/db"})
	if err != nil || got["apps/db"] != 2 {
		t.Fatalf("versions %v, %v", got, err)
	}
}
