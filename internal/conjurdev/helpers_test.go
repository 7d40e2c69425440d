package conjurdev

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"github.com/cyberark/conjur-api-go/conjurapi/logging"
	"github.com/cyberark/conjur-api-go/conjurapi/response"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	logging.ApiLog.SetOutput(io.Discard)
	goleak.VerifyTestMain(m)
}

const (
	pluginLogin = "host/swarm/conjur-plugin"
	pluginRole  = "host:swarm/conjur-plugin"
	adminKey    = "admin-key-for-tests-only"
)

// env is a server with the demo data behind a real HTTP listener.
type env struct {
	t   *testing.T
	srv *Server
	url string
	ca  []byte
}

func newEnv(t *testing.T, opts ...func(*Options)) *env {
	t.Helper()
	o := Options{Account: "dev", AdminAPIKey: adminKey}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := srv.LoadDemo("../../docs/examples"); err != nil {
		t.Fatalf("LoadDemo: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, url: hs.URL}
}

// config builds a conjur-api-go Config by hand: no ambient ~/.conjurrc or
// /etc/conjur.conf, no credential storage.
func (e *env) config() conjurapi.Config {
	return conjurapi.Config{
		Account:           e.srv.Account(),
		ApplianceURL:      e.url,
		CredentialStorage: conjurapi.CredentialStorageNone,
		Environment:       conjurapi.EnvironmentOSS,
		SSLCert:           string(e.ca),
		HTTPTimeout:       10,
	}
}

func (e *env) client(login, key string) *conjurapi.Client {
	e.t.Helper()
	c, err := conjurapi.NewClientFromKey(e.config(), authn.LoginPair{Login: login, APIKey: key})
	if err != nil {
		e.t.Fatalf("NewClientFromKey: %v", err)
	}
	e.t.Cleanup(func() { c.GetHttpClient().CloseIdleConnections() })
	return c
}

func (e *env) admin() *conjurapi.Client { return e.client("admin", e.srv.AdminAPIKey()) }

func (e *env) plugin() *conjurapi.Client {
	e.t.Helper()
	key, err := e.srv.APIKey(pluginRole)
	if err != nil {
		e.t.Fatalf("APIKey: %v", err)
	}
	return e.client(pluginLogin, key)
}

// do sends a hand-made request (for what the client cannot send).
func (e *env) do(method, path string, body string, hdr map[string]string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// tokenHeader authenticates login through the client and returns the
// Authorization header value it would send.
func (e *env) tokenHeader(c *conjurapi.Client) string {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+"/whoami", nil)
	resp, err := c.SubmitRequest(req)
	if err != nil {
		e.t.Fatalf("SubmitRequest: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return req.Header.Get("Authorization")
}

// statusOf is the HTTP status of a conjur-api-go error (0 if none).
func statusOf(err error) int {
	var ce *response.ConjurError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

func conjurErr(err error) *response.ConjurError {
	var ce *response.ConjurError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}
