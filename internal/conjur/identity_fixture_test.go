package conjur

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
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
// a recorder of every request.
type identityServer struct {
	*devServer
	url    string
	log    *requestLog
	signer *identity.Signer // the manager's, whose key is in public-keys
}

func newIdentityServer(t testing.TB) *identityServer {
	t.Helper()
	srv := newDevServer(t, conjurdev.Options{})
	if _, err := srv.LoadPolicy(conjurdev.ModePost, "root", []byte(identityPolicy())); err != nil {
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
	rl := &requestLog{}
	hs := httptest.NewServer(rl.wrap(srv.Server))
	t.Cleanup(hs.Close)
	return &identityServer{devServer: srv, url: hs.URL, log: rl, signer: sig}
}

// config is a per-request identity mode config for the server, signing
// with sig.
func (s *identityServer) config(sig Signer) Config {
	return Config{ApplianceURLs: []string{s.url}, Account: "dev", AllowHTTP: true, JWTServiceID: jwtService,
		FetchTimeout: 2 * time.Second, Signer: sig}
}

// loggedRequest is one request the server received: its path, the role its
// access token names ("" for an authentication) and the variables it reads.
type loggedRequest struct {
	path      string
	role      string
	variables []string
}

// requestLog records every request to the dev server.
type requestLog struct {
	gate atomic.Pointer[chan struct{}] // when set, every read waits for it to close

	mu   sync.Mutex
	reqs []loggedRequest
}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr := loggedRequest{path: r.URL.Path, role: tokenRole(r.Header.Get("Authorization"))}
		if ids := r.URL.Query().Get("variable_ids"); ids != "" {
			lr.variables = strings.Split(ids, ",")
		} else if v, ok := strings.CutPrefix(r.URL.Path, "/secrets/dev/variable/"); ok {
			id, _ := url.PathUnescape(v)
			lr.variables = []string{"dev:variable:" + id}
		}
		l.mu.Lock()
		l.reqs = append(l.reqs, lr)
		l.mu.Unlock()
		if g := l.gate.Load(); g != nil && len(lr.variables) > 0 {
			select {
			case <-*g:
			case <-r.Context().Done():
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (l *requestLog) all() []loggedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loggedRequest(nil), l.reqs...)
}

// tokenRole is the sub of the Conjur access token in an Authorization
// header (Token token="base64(JSON)").
func tokenRole(h string) string {
	raw, ok := strings.CutPrefix(h, `Token token="`)
	if !ok {
		return ""
	}
	js, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(raw, `"`))
	if err != nil {
		return "?"
	}
	var tok struct{ Payload string }
	if json.Unmarshal(js, &tok) != nil {
		return "?"
	}
	payload, err := decodeB64(tok.Payload)
	if err != nil {
		return "?"
	}
	var claims struct{ Sub string }
	if json.Unmarshal(payload, &claims) != nil {
		return "?"
	}
	return claims.Sub
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
