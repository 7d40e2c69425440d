package driver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// TestDoNotReuseBypassesTheValueCache: with the value cache on
// (CONJUR_SWARM_CACHE_TTL), a rule without reuse: true (DoNotReuse) is
// answered with Conjur's value of now, never the cached one: a variable
// rotated between two Gets reaches the second task, for a single variable
// and for a bundle's members. The control shows that the cache does hold
// the old value, so the test would see a Get served from it.
func TestDoNotReuseBypassesTheValueCache(t *testing.T) {
	s := newStack(t)
	cfg := s.conjurConfig()
	cfg.CacheTTL = time.Minute
	plugin := s.plugin(t, &cfg)
	control, err := conjur.New(cfg, s.log.Named("control"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = control.Close() })
	ctx := context.Background()
	const variable = "apps/demo/db-password"
	const member = "apps/demo/api-token" // another variable: the single Get's fresh fetch refills the cache for its own

	bundleReq := func(task string) pluginapi.Request {
		return pluginapi.Request{SecretName: "demo_env", SecretLabels: map[string]string{"conjur.bundle": "demo-env"},
			ServiceName: "demo_web", ServiceLabels: map[string]string{"com.docker.stack.namespace": "demo"},
			ServiceID: "svc", TaskID: task, NodeID: "node", TaskImage: "nginx:1"}
	}
	single := func(task string) pluginapi.Request {
		r := byLabel("db_password", variable)
		r.TaskID = task
		return r
	}
	get := func(req pluginapi.Request) pluginapi.Response {
		t.Helper()
		res, err := plugin.GetSecret(ctx, req)
		if err != nil || res.Err != "" {
			t.Fatalf("GetSecret(%s): %v %s", req.SecretName, err, res.Err)
		}
		if !res.DoNotReuse {
			t.Fatalf("GetSecret(%s) may be reused; the demo mapping's rules are not reuse: true", req.SecretName)
		}
		return res
	}

	// Fill the caches (the plugin's and the control's) with the value before.
	if got := string(get(single("t1")).Value); got != "demo-db-password-0001" {
		t.Fatalf("first Get = %q", got)
	}
	if got := string(get(bundleReq("t1")).Value); !strings.Contains(got, "demo-api-token-0001") {
		t.Fatalf("first bundle Get = %q", got)
	}
	if _, err := control.Get(ctx, conjur.Ref{ID: variable}); err != nil {
		t.Fatal(err)
	}

	for id, v := range map[string]string{variable: "demo-db-password-0002", member: "demo-api-token-0002"} {
		if err := s.dev.SetSecret(id, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}

	cached, err := control.Get(ctx, conjur.Ref{ID: variable})
	if err != nil || string(cached.Data) != "demo-db-password-0001" || !cached.Cached {
		t.Fatalf("control: a cacheable Get after the rotation = %q cached=%t %v; the cache does not hold the value before, so this test proves nothing", cached.Data, cached.Cached, err)
	}
	if got := string(get(single("t2")).Value); got != "demo-db-password-0002" {
		t.Errorf("single variable after a rotation = %q, want the new value: a DoNotReuse Get was served from the value cache", got)
	}
	if got := string(get(bundleReq("t2")).Value); !strings.Contains(got, "demo-api-token-0002") {
		t.Errorf("bundle after a rotation = %q, want the new API_TOKEN: a DoNotReuse bundle member was served from the value cache", got)
	}
}
