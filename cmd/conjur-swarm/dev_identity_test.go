package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/goleak"

	"github.com/cyberark/conjur-swarm/internal/identity"
)

// `make run-per-stack`: serve --dev in the per-request identity mode prints
// three get commands that work as printed: shop's and blog's own secrets,
// each read as the stack's own Conjur host, and shop reaching for blog's
// variable through the demo's too-broad rule, which Conjur refuses.
func TestServeDevPerStackNextStepWorks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clearEnv(t)
	dir := t.TempDir()
	v := viper.New()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addSettingFlags(fs)
	if err := bindSettings(v, fs); err != nil {
		t.Fatal(err)
	}
	v.Set("socket", filepath.Join(dir, "conjur.sock"))
	v.Set("mapping_file", "../../"+devIdentityDir+"/mapping.yml")
	v.Set("log_level", "warn")
	v.Set("identity", identityPerRequest)
	v.Set("identity_issuer", devIdentityIssuer)
	v.Set("identity_state_dir", filepath.Join(dir, "state"))
	v.Set("authn_jwt_service_id", devJWTService)
	cfg, err := loadConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, cfg, serveOptions{dev: true, devDir: "../../" + devIdentityDir, prog: "conjur-swarm", out: &out, ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve --dev stopped: %v", err)
	}
	var gets []string
	var statusLine string
	for _, l := range strings.Split(out.String(), "\n") {
		switch l = strings.TrimSpace(l); {
		case strings.HasPrefix(l, "conjur-swarm get "):
			gets = append(gets, l)
		case strings.HasPrefix(l, "conjur-swarm status "):
			statusLine = l
		}
	}
	if len(gets) != 3 {
		t.Fatalf("serve --dev printed %d get commands, want 3:\n%s", len(gets), out.String())
	}
	for i, want := range []string{"shop-db-password-0001", "blog-db-password-0001", ""} {
		stdout, stderr, code := execCLI(strings.Fields(gets[i])[1:]...)
		if want == "" {
			if code == 0 || !strings.Contains(stderr, "FORBIDDEN") || !strings.Contains(stderr, "shop") {
				t.Errorf("%q: exit %d, stderr %q; want FORBIDDEN naming identity shop", gets[i], code, stderr)
			}
			continue
		}
		if stdout != want || code != 0 {
			t.Errorf("the printed get command %q gave %q, exit %d, stderr %s; want %q", gets[i], stdout, code, stderr, want)
		}
	}
	status, _, _ := execCLI(strings.Fields(statusLine)[1:]...)
	keys, err := identity.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	signing := "issuer " + devIdentityIssuer + ", key " + keys.Current().ID
	for _, want := range []string{"per-request: a JWT this manager signs", "2 identities hold a token", signing, "IDENTITY", "FORBIDDEN"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
}
