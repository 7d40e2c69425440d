package conjurdev

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// The storm benchmarks send, one at a time over loopback HTTP, the requests
// the plugin sends in bench/storm (which runs this server as its Conjur):
// the same methods, paths, bodies and headers, so that the server's CPU per
// request can be profiled without the storm:
//
//	go test -run '^$' -bench Storm -benchmem -cpuprofile cpu.out ./internal/conjurdev/
//
// BenchmarkStormRequest's ns/op counts the client's side and the loopback
// of each request too, and its allocs/op are the whole process's;
// BenchmarkStormHandler calls the server's handler with the same requests
// and no connection, so its figures are the server's code alone.

// stormVariables are the variables the storm benchmarks read: the demo's
// that the plugin's host may fetch (docs/examples).
var stormVariables = []string{
	"apps/demo/db-password", "apps/demo/api-token", "apps/demo/tls-key", "apps/demo/db-user", "apps/demo/db-host",
}

// stormBench is the server of the storm benchmarks behind a real listener.
type stormBench struct {
	srv    *Server
	url    string
	apiKey string
	jwt    string
	hc     *http.Client
}

func newStormBench(b *testing.B) *stormBench {
	b.Helper()
	sb := newStormServer(b)
	l, err := sb.srv.Listen("127.0.0.1:0", false)
	if err != nil {
		b.Fatal(err)
	}
	sb.url = l.URL
	b.Cleanup(func() {
		sb.hc.CloseIdleConnections()
		_ = l.Close()
	})
	return sb
}

// newStormServer is the server of the storm benchmarks, not listening.
func newStormServer(b *testing.B) *stormBench {
	b.Helper()
	srv, err := New(Options{AdminAPIKey: adminKey, Authenticators: []string{"authn", "authn-jwt/swarm"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := srv.LoadDemo("../../docs/examples"); err != nil {
		b.Fatal(err)
	}
	identity, err := os.ReadFile("../../docs/examples/conjur-identity-policy.yml")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := srv.LoadConjurPolicy(ModePost, "root", identity); err != nil {
		b.Fatal(err)
	}
	iss := testIssuer(b)
	for name, v := range map[string]string{
		"public-keys": iss.PublicKeysJSON(), "issuer": iss.Issuer(), "audience": "conjur-swarm",
		"token-app-property": "sub", "identity-path": "swarm/stacks",
	} {
		if err := srv.SetSecret("conjur/authn-jwt/swarm/"+name, []byte(v)); err != nil {
			b.Fatal(err)
		}
	}
	jwt, err := iss.Sign(map[string]any{"sub": "shop", "stack": "shop", "aud": "conjur-swarm"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	key, err := srv.APIKey(pluginRole)
	if err != nil {
		b.Fatal(err)
	}
	return &stormBench{srv: srv, apiKey: key, jwt: jwt, hc: &http.Client{Timeout: 10 * time.Second}}
}

// do sends req and reads the whole answer, which must have status want.
func (sb *stormBench) do(b *testing.B, req *http.Request, want int) []byte {
	resp, err := sb.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %s %q", req.Method, req.URL.Path, resp.Status, body)
	}
	return body
}

// authn is the plugin's login with its API key; it returns the
// Authorization header of the access token.
func (sb *stormBench) authn(b *testing.B) string {
	return `Token token="` + string(sb.do(b, sb.authnRequest(), http.StatusOK)) + `"`
}

func (sb *stormBench) authnRequest() *http.Request {
	req, _ := http.NewRequest(http.MethodPost, sb.url+"/authn/dev/"+url.PathEscape(pluginLogin)+"/authenticate", strings.NewReader(sb.apiKey))
	req.Header.Set("Accept-Encoding", "base64")
	return req
}

func (sb *stormBench) authnJWTRequest() *http.Request {
	req, _ := http.NewRequest(http.MethodPost, sb.url+"/authn-jwt/swarm/dev/authenticate", strings.NewReader("jwt="+url.QueryEscape(sb.jwt)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept-Encoding", "base64")
	return req
}

// getRequest is the plugin's GET of path (a variable or a batch).
func (sb *stormBench) getRequest(path, auth string, batch bool) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, sb.url+path, nil)
	if batch {
		req.Header.Set("Accept-Encoding", "base64")
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Conjur-Source", "conjur-swarm")
	return req
}

// stormPaths are the paths of the single and the batch GET.
func stormPaths() (one, batch string) {
	ids := make([]string, len(stormVariables))
	for i, v := range stormVariables {
		ids[i] = "dev:variable:" + v
	}
	return "/secrets/dev/variable/" + url.PathEscape(stormVariables[0]),
		"/secrets?variable_ids=" + url.QueryEscape(strings.Join(ids, ","))
}

func BenchmarkStormRequest(b *testing.B) {
	one, batch := stormPaths()
	for _, bc := range []struct {
		name string
		req  func(sb *stormBench) *http.Request
	}{
		{"secret", func(sb *stormBench) *http.Request { return sb.getRequest(one, sb.authn(b), false) }},
		{"batch", func(sb *stormBench) *http.Request { return sb.getRequest(batch, sb.authn(b), true) }},
		{"authn", (*stormBench).authnRequest},
		{"authn-jwt", (*stormBench).authnJWTRequest},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sb := newStormBench(b)
			req := bc.req(sb)
			body := requestBody(b, req)
			b.ReportAllocs()
			for b.Loop() {
				req.Body = io.NopCloser(bytes.NewReader(body))
				sb.do(b, req, http.StatusOK)
			}
		})
	}
}

func BenchmarkStormHandler(b *testing.B) {
	one, batch := stormPaths()
	for _, bc := range []struct {
		name string
		req  func(sb *stormBench, auth string) *http.Request
	}{
		{"secret", func(sb *stormBench, auth string) *http.Request { return sb.getRequest(one, auth, false) }},
		{"batch", func(sb *stormBench, auth string) *http.Request { return sb.getRequest(batch, auth, true) }},
		{"authn", func(sb *stormBench, _ string) *http.Request { return sb.authnRequest() }},
		{"authn-jwt", func(sb *stormBench, _ string) *http.Request { return sb.authnJWTRequest() }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sb := newStormServer(b)
			sb.url = "http://127.0.0.1"
			w := &discardWriter{h: http.Header{}}
			req := sb.authnRequest()
			sb.srv.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("authn: %d", w.status)
			}
			req = bc.req(sb, `Token token="`+string(w.body)+`"`)
			body := requestBody(b, req)
			b.ReportAllocs()
			for b.Loop() {
				req.Body = io.NopCloser(bytes.NewReader(body))
				w.reset()
				sb.srv.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("%s: %d %q", req.URL.Path, w.status, w.body)
				}
			}
		})
	}
}

// requestBody reads req's body, to send it again on every loop.
func requestBody(b *testing.B, req *http.Request) []byte {
	if req.Body == nil {
		return nil
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// discardWriter is an http.ResponseWriter that keeps the status and the
// last body, reused across requests.
type discardWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.body = 0, w.body[:0]
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}
