package conjur

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/identity"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// The per-request identity mode's fixture: two stacks, each its own Conjur
// host below authn-jwt/swarm's identity-path (swarm): swarm/stacks/shop and
// swarm/stacks/blog, each with execute on its own variables st/<stack>/vN
// and read (no execute) on the other's; swarm/stacks/mute exists without
// authenticate on the service.

const perVar = 8

func stackVar(stack string, i int) string   { return fmt.Sprintf("st/%s/v%d", stack, i) }
func stackValue(stack string, i int) string { return fmt.Sprintf("%s-value-%d", stack, i) }

func identityPolicy() string {
	var b strings.Builder
	b.WriteString("- !policy\n  id: st\n  body:\n")
	for _, st := range []string{"shop", "blog"} {
		for i := range perVar {
			fmt.Fprintf(&b, "  - !variable %s\n", strings.TrimPrefix(stackVar(st, i), "st/"))
		}
	}
	for _, st := range []string{"shop", "blog", "mute"} {
		fmt.Fprintf(&b, "- !host\n  id: swarm/stacks/%s\n  annotations:\n    authn-jwt/%s/stack: %s\n", st, jwtService, st)
	}
	for _, st := range []string{"shop", "blog"} {
		other := map[string]string{"shop": "blog", "blog": "shop"}[st]
		fmt.Fprintf(&b, "- !permit\n  role: !host swarm/stacks/%s\n  privilege: authenticate\n  resource: !webservice conjur/authn-jwt/%s\n", st, jwtService)
		for i := range perVar {
			fmt.Fprintf(&b, "- !permit\n  role: !host swarm/stacks/%s\n  privileges: [read, execute]\n  resource: !variable %s\n", st, stackVar(st, i))
			fmt.Fprintf(&b, "- !permit\n  role: !host swarm/stacks/%s\n  privilege: read\n  resource: !variable %s\n", st, stackVar(other, i))
		}
	}
	return b.String()
}

// identityServer is the dev server with the identity policy, served through
// a gate.
type identityServer struct {
	*devServer
	url    string
	gate   *gate
	signer *identity.Signer // the manager's, whose key is in public-keys
}

func newIdentityServer(t testing.TB) *identityServer {
	t.Helper()
	srv := newDevServer(t, conjurdev.Options{})
	if _, err := srv.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(identityPolicy())); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"shop", "blog"} {
		for i := range perVar {
			if err := srv.SetSecret(stackVar(st, i), []byte(stackValue(st, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	store, err := identity.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := identity.NewSigner(store, identity.Options{Issuer: srv.jwt.Issuer()})
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(store.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := identity.Merge([]identity.Input{{Name: "m1", Data: jwks}})
	if err != nil {
		t.Fatal(err)
	}
	pk, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetSecret("conjur/authn-jwt/"+jwtService+"/public-keys", pk); err != nil {
		t.Fatal(err)
	}
	srv.ResetCounts()
	srv.ResetRequests()
	g := &gate{}
	hs := httptest.NewServer(g.wrap(srv.Server))
	t.Cleanup(hs.Close)
	return &identityServer{devServer: srv, url: hs.URL, gate: g, signer: sig}
}

// config is a per-request identity mode config for the server, signing
// with sig.
func (s *identityServer) config(sig Signer) Config {
	return Config{ApplianceURLs: []string{s.url}, Account: "dev", AllowHTTP: true, JWTServiceID: jwtService,
		FetchTimeout: 2 * time.Second, Signer: sig}
}

// gate holds every read request to the dev server while set, so that a
// test can queue Gets behind it.
type gate struct {
	ch atomic.Pointer[chan struct{}]
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := g.ch.Load(); c != nil && strings.HasPrefix(r.URL.Path, "/secrets") {
			select {
			case <-*c:
			case <-r.Context().Done():
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recordingSigner is the manager's signer (internal/identity, with its own
// key in a private state directory), remembering every JWT it signed; fail
// makes it sign nothing, as when the key is unusable.
type recordingSigner struct {
	s      *identity.Signer
	fail   atomic.Bool
	mu     sync.Mutex
	signed []string
}

func (r *recordingSigner) Issuer() string { return r.s.Issuer() }
func (r *recordingSigner) KeyID() string  { return r.s.KeyID() }

func (r *recordingSigner) Sign(w Workload) (redact.String, time.Time, error) {
	if r.fail.Load() {
		return "", time.Time{}, errors.New("the signing key cannot be read")
	}
	jwt, exp, err := r.s.Sign(w)
	if err == nil {
		r.mu.Lock()
		r.signed = append(r.signed, jwt.Reveal())
		r.mu.Unlock()
	}
	return jwt, exp, err
}

func (r *recordingSigner) jwts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.signed...)
}

// as is a Ref of variable id read as stack's identity (stacks/<stack>
// below the service's identity-path).
func as(stack, id string) Ref {
	return Ref{ID: id, Workload: &Workload{Subject: "stacks/" + stack, Stack: stack, Service: stack + "_web",
		ServiceID: "svc-" + stack, TaskID: "task-" + stack, NodeID: "node-1", Image: "img@sha256:00"}}
}
