package conjur

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

func newIdentityClient(t *testing.T, srv *identityServer, mod func(*Config)) (*Client, *recordingSigner) {
	t.Helper()
	sig := &recordingSigner{s: srv.signer}
	cfg := srv.config(sig)
	if mod != nil {
		mod(&cfg)
	}
	return newClient(t, cfg), sig
}

func TestPerIdentity_eachStackReadsAsItsOwnHost(t *testing.T) {
	srv := newIdentityServer(t)
	c, _ := newIdentityClient(t, srv, nil)

	v, err := c.Get(t.Context(), as("shop", stackVar("shop", 0)))
	if err != nil || string(v.Data) != stackValue("shop", 0) {
		t.Fatalf("shop reads its own variable: %q, %+v", v.Data, err)
	}
	v, err = c.Get(t.Context(), as("blog", stackVar("blog", 1)))
	if err != nil || string(v.Data) != stackValue("blog", 1) {
		t.Fatalf("blog reads its own variable: %q, %+v", v.Data, err)
	}
	// A mapping that wrongly lets shop reach for blog's variable: Conjur refuses it.
	_, err = c.Get(t.Context(), as("shop", stackVar("blog", 0)))
	if CodeOf(err) != errcode.Forbidden || !strings.Contains(err.Error(), "stacks/shop") {
		t.Fatalf("shop reaching for blog's variable: got %v, want FORBIDDEN naming stacks/shop", err)
	}
	roles := map[string]bool{}
	for _, r := range srv.Requests() {
		if len(r.Variables) > 0 {
			roles[r.Role] = true
		}
	}
	if !roles["dev:host:swarm/stacks/shop"] || !roles["dev:host:swarm/stacks/blog"] || len(roles) != 2 {
		t.Fatalf("the reads were made as %v, want host/swarm/stacks/shop and host/swarm/stacks/blog only", roles)
	}
	st := c.Status()
	if st.CredentialSource != "per-request" || st.Identities != 2 {
		t.Fatalf("status: source %q, identities %d; want per-request, 2", st.CredentialSource, st.Identities)
	}
	if st.SigningKeyID == "" || st.SigningKeyID != srv.signer.KeyID() || st.SigningIssuer != srv.signer.Issuer() {
		t.Fatalf("status: signing issuer %q, key %q; want the manager signer's %q, %q", st.SigningIssuer, st.SigningKeyID, srv.signer.Issuer(), srv.signer.KeyID())
	}
}

func TestPerIdentity_refusals(t *testing.T) {
	srv := newIdentityServer(t)
	c, sig := newIdentityClient(t, srv, nil)
	for _, tc := range []struct {
		name string
		ref  Ref
		code errcode.Code
		says []string
	}{
		{"auth refused/identity Conjur does not know", as("ghost", stackVar("shop", 0)), errcode.AuthRefused, []string{"stacks/ghost", "authn-jwt/" + jwtService, "public-keys"}},
		{"auth refused/host without authenticate", as("mute", stackVar("shop", 0)), errcode.AuthRefused, []string{"stacks/mute", "authn-jwt/" + jwtService, "HTTP 403"}},
		{"not configured/no identity", Ref{ID: stackVar("shop", 0)}, errcode.NotConfigured, []string{"identity"}},
		{"bad request/identity with a space", Ref{ID: stackVar("shop", 0), Workload: &Workload{Subject: "stacks/a b"}}, errcode.BadRequest, []string{"identity"}},
		{"forbidden/no execute", as("blog", stackVar("shop", 3)), errcode.Forbidden, []string{"stacks/blog", stackVar("shop", 3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Get(t.Context(), tc.ref)
			if CodeOf(err) != tc.code {
				t.Fatalf("got %+v, want %s", err, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error does not say %q: %v", s, err)
				}
			}
		})
	}
	t.Run("not configured/the key cannot sign", func(t *testing.T) {
		sig.fail.Store(true)
		defer sig.fail.Store(false)
		_, err := c.Get(t.Context(), as("fresh", stackVar("shop", 0)))
		if CodeOf(err) != errcode.NotConfigured || !strings.Contains(err.Error(), "stacks/fresh") {
			t.Fatalf("got %+v, want NOT_CONFIGURED naming the identity", err)
		}
	})
	// The refused identities changed nothing for the others.
	if v, err := c.Get(t.Context(), as("shop", stackVar("shop", 2))); err != nil || string(v.Data) != stackValue("shop", 2) {
		t.Fatalf("shop after the refusals: %q, %+v", v.Data, err)
	}
}

// A refused identity does not fail the other identities' parts of one
// GetMany, and no batch request carries two identities.
func TestPerIdentity_refusedIdentityDoesNotFailOthers(t *testing.T) {
	srv := newIdentityServer(t)
	c, _ := newIdentityClient(t, srv, nil)
	var refs []Ref
	for i := range 4 {
		refs = append(refs, as("shop", stackVar("shop", i)), as("ghost", stackVar("shop", i)), as("blog", stackVar("blog", i)))
	}
	for i, r := range c.GetMany(t.Context(), refs) {
		ref := refs[i]
		var want string
		switch ref.Workload.Stack {
		case "ghost":
			if CodeOf(r.Err) != errcode.AuthRefused {
				t.Errorf("%s as ghost: %+v, want AUTH_REFUSED", ref.ID, r.Err)
			}
			continue
		default:
			want = stackValue(ref.Workload.Stack, i/3)
		}
		if r.Err != nil || string(r.Value.Data) != want {
			t.Errorf("%s as %s: %q, %+v; want %q", ref.ID, ref.Workload.Stack, r.Value.Data, r.Err, want)
		}
	}
	assertOneIdentityPerRequest(t, srv.Requests())
}

// assertOneIdentityPerRequest fails unless every read request the dev
// server logged names only variables of its own identity's stack, and at
// least one was a batch.
func assertOneIdentityPerRequest(t *testing.T, reqs []conjurdev.Request) {
	t.Helper()
	batches := 0
	for _, r := range reqs {
		if len(r.Variables) == 0 {
			continue
		}
		if len(r.Variables) > 1 {
			batches++
		}
		stack, ok := strings.CutPrefix(r.Role, "dev:host:swarm/stacks/")
		if !ok {
			t.Errorf("a read of %v was made as %q, not a stack's host", r.Variables, r.Role)
			continue
		}
		for _, v := range r.Variables {
			if !strings.HasPrefix(v, "dev:variable:st/"+stack+"/") {
				t.Errorf("one request as %s carries %s, another identity's variable: %v", r.Role, v, r.Variables)
			}
		}
	}
	if batches == 0 {
		t.Fatalf("no batch request was made (%d requests): the test shows nothing about batches", len(reqs))
	}
}

// Under load, with one request slot shared by every identity, the Gets of
// two identities gather into batches, each of one identity only.
func TestPerIdentity_batchesNeverMixIdentities(t *testing.T) {
	srv := newIdentityServer(t)
	c, _ := newIdentityClient(t, srv, func(cfg *Config) { cfg.MaxInFlight, cfg.FetchTimeout = 1, 20*time.Second })
	stacks := []string{"shop", "blog"}
	for _, st := range stacks { // tokens first: only the reads wait at the gate
		if _, err := c.Get(t.Context(), as(st, stackVar(st, perVar-1))); err != nil {
			t.Fatal(err)
		}
	}
	gate := make(chan struct{})
	srv.gate.ch.Store(&gate)
	var wg sync.WaitGroup
	errs := make(chan error, 2*perVar)
	for _, st := range stacks {
		for i := range perVar - 1 {
			wg.Go(func() {
				v, err := c.Get(t.Context(), as(st, stackVar(st, i)))
				if err == nil && string(v.Data) != stackValue(st, i) {
					err = fmt.Errorf("%s as %s got %q", stackVar(st, i), st, v.Data)
				}
				if err != nil {
					errs <- err
				}
			})
		}
	}
	waitFor(t, func() bool {
		queued := 0
		for _, tn := range c.ids.all() {
			_, p, _ := batcherState(tn.batch)
			queued += p
		}
		return queued == 2*(perVar-2) // one Get of each identity is out, the rest queued
	}, "every Get but one per identity queued")
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertOneIdentityPerRequest(t, srv.Requests())
}

// Each identity's token lives and is refreshed on its own: a token near
// its end is renewed for its identity alone.
func TestPerIdentity_tokensExpireAndRefreshIndependently(t *testing.T) {
	srv := newIdentityServer(t)
	c, _ := newIdentityClient(t, srv, nil)
	var offset atomic.Int64
	c.sess.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	authns := func() int64 { return srv.Count(conjurdev.EpAuthnJWT) }

	mustAs := func(stack string) {
		t.Helper()
		if _, err := c.Get(t.Context(), Ref{ID: stackVar(stack, 0), NoCache: true, Workload: as(stack, "").Workload}); err != nil {
			t.Fatalf("%s: %+v", stack, err)
		}
	}
	mustAs("shop")
	offset.Store(int64(4 * time.Minute)) // half of the 8-minute token
	mustAs("blog")
	if n := authns(); n != 2 {
		t.Fatalf("two identities authenticated %d times, want 2", n)
	}
	offset.Store(int64(8 * time.Minute * 96 / 100)) // past shop's stale point, blog's token is young
	mustAs("shop")
	mustAs("blog")
	if n := authns(); n != 3 {
		t.Fatalf("after shop's token went stale: %d authentications, want 3 (shop's alone)", n)
	}
	offset.Store(int64(4*time.Minute + 8*time.Minute*96/100)) // now blog's is stale, shop's young
	mustAs("blog")
	mustAs("shop")
	if n := authns(); n != 4 {
		t.Fatalf("after blog's token went stale: %d authentications, want 4 (blog's alone)", n)
	}
}

// The value cache, the last-good values and coalescing are per identity: a
// value one identity read is never served to another.
func TestPerIdentity_cachedValueNeverServedToAnotherIdentity(t *testing.T) {
	srv := newIdentityServer(t)
	c, _ := newIdentityClient(t, srv, func(cfg *Config) { cfg.CacheTTL = time.Minute })
	ref := as("shop", stackVar("shop", 5))
	ref.KeepLastGood = true
	if _, err := c.Get(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(t.Context(), ref); err != nil || !v.Cached {
		t.Fatalf("shop's second read: cached=%t, %+v; want served from the cache", v.Cached, err)
	}
	other := as("blog", stackVar("shop", 5))
	if v, err := c.Get(t.Context(), other); CodeOf(err) != errcode.Forbidden || v.Cached || len(v.Data) != 0 {
		t.Fatalf("blog reading shop's cached variable: cached=%t len=%d %v; want FORBIDDEN from Conjur", v.Cached, len(v.Data), err)
	}
	if _, _, ok := c.LastGood(other, time.Hour); ok {
		t.Fatal("shop's last good value is offered to blog")
	}
	if _, _, ok := c.LastGood(ref, time.Hour); !ok {
		t.Fatal("shop's last good value is gone")
	}
}

func TestPerIdentity_handoffRefused(t *testing.T) {
	srv := newIdentityServer(t)
	c, _ := newIdentityClient(t, srv, nil)
	err := c.Adopt(t.Context(), credential.Credential{Login: pluginLogin, APIKey: "k"})
	if CodeOf(err) != errcode.CredentialRejected || !strings.Contains(err.Error(), "per-request") {
		t.Fatalf("a handoff to a per-request plugin: %v, want CREDENTIAL_REJECTED saying why", err)
	}
}

// The pool keeps MaxIdentities identities: the least recently used one is
// dropped and authenticates again at its next Get.
func TestPerIdentity_poolIsBounded(t *testing.T) {
	srv := newIdentityServer(t)
	c, _ := newIdentityClient(t, srv, func(cfg *Config) { cfg.MaxIdentities = 1 })
	for _, st := range []string{"shop", "blog", "shop"} {
		if _, err := c.Get(t.Context(), as(st, stackVar(st, 0))); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Status().Identities; n != 1 {
		t.Fatalf("the pool holds %d identities, want 1", n)
	}
	if n := srv.Count(conjurdev.EpAuthnJWT); n != 3 {
		t.Fatalf("%d authentications, want 3 (shop again after it was dropped)", n)
	}
}

// The JWTs the plugin signs never reach a log line, an error or the status.
func TestPerIdentity_JWTNeverInLogStatusOrError(t *testing.T) {
	srv := newIdentityServer(t)
	core, logs := observer.New(zapcore.DebugLevel)
	sig := &recordingSigner{s: srv.signer}
	c, err := New(srv.config(sig), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var texts []string
	for _, ref := range []Ref{as("shop", stackVar("shop", 0)), as("ghost", stackVar("shop", 0)), as("shop", stackVar("blog", 0)), as("mute", "st/none")} {
		_, err := c.Get(context.Background(), ref)
		texts = append(texts, fmt.Sprintf("%v %+v %s", err, err, err))
	}
	texts = append(texts, fmt.Sprintf("%+v", c.Status()), c.sess.cfg.String())
	for _, e := range logs.All() {
		texts = append(texts, e.Message)
		for k, v := range e.ContextMap() {
			texts = append(texts, k+"="+fmt.Sprint(v))
		}
	}
	jwts := sig.jwts()
	if len(jwts) < 3 {
		t.Fatalf("only %d JWTs were signed: the test shows nothing", len(jwts))
	}
	for _, jwt := range jwts {
		sigPart := jwt[strings.LastIndex(jwt, ".")+1:]
		for _, s := range texts {
			if strings.Contains(s, sigPart) {
				t.Fatalf("a signed JWT appears in %q", s)
			}
		}
	}
}

func TestConfig_perRequestIdentity(t *testing.T) {
	base := Config{ApplianceURLs: []string{"https://conjur.test"}, Account: "dev", JWTServiceID: "swarm", Signer: &recordingSigner{}}
	if err := base.Validate(); err != nil {
		t.Fatalf("a per-request config is refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		says string
	}{
		{"refused/no service id", func(c *Config) { c.JWTServiceID = "" }, "CONJUR_AUTHN_JWT_SERVICE_ID"},
		{"refused/an API key", func(c *Config) { c.Login, c.APIKey = pluginLogin, "k" }, "CONJUR_AUTHN_API_KEY"},
		{"refused/a credential file", func(c *Config) { c.CredentialFile = "/run/secrets/x" }, "CONJUR_SWARM_CREDENTIAL_FILE"},
		{"refused/a JWT file", func(c *Config) { c.JWTTokenPath = "/jwt" }, "JWT_TOKEN_PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mod(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want an error naming %s", err, tc.says)
			}
		})
	}
}
