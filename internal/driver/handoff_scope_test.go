package driver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// TestHandoffGoesOnlyToTheURLsItNames: a plugin lists a staging Conjur
// first and production second; the bootstrap document names production
// only. Through the plugin socket, the handoff and the Gets after it
// reach production alone: staging sees no authentication and no request.
func TestHandoffGoesOnlyToTheURLsItNames(t *testing.T) {
	s := newStack(t) // production
	staging, err := conjurdev.New(conjurdev.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := staging.LoadDemo(examples); err != nil {
		t.Fatal(err)
	}
	sl, err := staging.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sl.Close() })
	staging.ResetCounts()

	cfg := s.conjurConfig()
	cfg.APIKey = "" // no credential of its own: it waits for the handoff
	cfg.ApplianceURLs = []string{sl.URL, s.url}
	cfg.CACertPEM = append(append([]byte(nil), sl.CAPEM...), s.ca...)
	c, err := conjur.New(cfg, s.log.Named("conjur"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	d, err := New(Options{Resolver: s.store, PolicyStatus: s.store, Account: s.dev.Account(), ApplianceURLs: cfg.ApplianceURLs, Logger: s.log.Named("driver"), Conjur: c})
	if err != nil {
		t.Fatal(err)
	}
	_, sock := servePlugin(t, d)
	plugin := pluginapi.NewClient(sock, 10*time.Second)
	ctx := context.Background()

	doc := fmt.Sprintf(`{"login":%q,"api_key":%q,"account":%q,"appliance_url":%q}`, pluginLogin, s.apiKey, s.dev.Account(), s.url)
	if ans, err := plugin.Bootstrap(ctx, []byte(doc)); err != nil || !ans.OK {
		t.Fatalf("Bootstrap = %+v, %v", ans, err)
	}
	res, err := plugin.GetSecret(ctx, byLabel("db_password", "apps/demo/db-password"))
	if err != nil || res.Err != "" || string(res.Value) != "demo-db-password-0001" {
		t.Fatalf("GetSecret = %+v, %v", res, err)
	}
	if n := staging.Count(conjurdev.EpAuthn) + staging.Count(conjurdev.EpSecret) + staging.Count(conjurdev.EpBatch); n != 0 {
		t.Fatalf("the staging Conjur, listed first, received %d requests with production's credential; want 0", n)
	}
}
