package conjur

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

const (
	pluginLogin = "host/swarm/conjur-plugin"
	pluginRole  = "dev:host:swarm/conjur-plugin"
	jwtService  = "swarm"
	nVars       = 100
)

// testPolicy gives the plugin execute on apps/v000..v099 and apps/bin, read
// only on apps/read-only, execute on apps/empty (never set), nothing on
// restricted/hidden; and configures authn-jwt/swarm for it.
func testPolicy() string {
	var b strings.Builder
	// Conjur's authn-jwt takes a host only with at least one annotation
	// authn-jwt/<service>/<claim> pinning a claim of its JWTs.
	b.WriteString("- !policy\n  id: swarm\n  body:\n  - !host\n    id: conjur-plugin\n    annotations:\n      authn-jwt/" + jwtService + "/sub: conjur-plugin\n")
	b.WriteString("- !policy\n  id: apps\n  body:\n  - !group readers\n  - &vars\n")
	for i := range nVars {
		fmt.Fprintf(&b, "    - !variable v%03d\n", i)
	}
	b.WriteString("    - !variable bin\n    - !variable empty\n")
	b.WriteString("  - !permit\n    role: !group readers\n    privileges: [read, execute]\n    resources: *vars\n")
	b.WriteString("  - !variable read-only\n  - !permit\n    role: !group readers\n    privilege: read\n    resource: !variable read-only\n")
	b.WriteString("- !policy\n  id: restricted\n  body:\n  - !variable hidden\n")
	b.WriteString("- !grant\n  role: !group apps/readers\n  member: !host swarm/conjur-plugin\n")
	b.WriteString("- !webservice conjur/authn-jwt/" + jwtService + "\n")
	for _, v := range []string{"public-keys", "issuer", "token-app-property", "identity-path"} {
		b.WriteString("- !variable conjur/authn-jwt/" + jwtService + "/" + v + "\n")
	}
	b.WriteString("- !permit\n  role: !host swarm/conjur-plugin\n  privilege: authenticate\n  resource: !webservice conjur/authn-jwt/" + jwtService + "\n")
	return b.String()
}

func varID(i int) string    { return fmt.Sprintf("apps/v%03d", i) }
func varValue(i int) string { return fmt.Sprintf("value-of-%03d", i) }
func binaryValue() []byte   { return []byte{0xff, 0x00, 0xfe, 'b', 'i', 'n', 0x80} }
func quietLog(t testing.TB) *zap.Logger {
	if tt, ok := t.(*testing.T); ok && testing.Verbose() {
		return zaptest.NewLogger(tt)
	}
	return zap.NewNop()
}

// devServer is a conjurdev.Server loaded with testPolicy and values.
type devServer struct {
	*conjurdev.Server
	key string // the plugin's API key
	jwt *conjurdev.JWTIssuer
}

func newDevServer(t testing.TB, opts conjurdev.Options) *devServer {
	t.Helper()
	if opts.Authenticators == nil {
		// As CONJUR_AUTHENTICATORS on a real Conjur: a configured
		// authn-jwt service is not enabled by itself.
		opts.Authenticators = []string{"authn", "authn-jwt/" + jwtService}
	}
	srv, err := conjurdev.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(testPolicy()))
	if err != nil {
		t.Fatal(err)
	}
	key := res.CreatedRoles[pluginRole]
	if key == "" {
		t.Fatalf("policy created no API key for %s: %v", pluginRole, res.CreatedRoles)
	}
	for i := range nVars {
		if err := srv.SetSecret(varID(i), []byte(varValue(i))); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(srv.SetSecret("apps/bin", binaryValue()))
	must(srv.SetSecret("apps/read-only", []byte("ro")))
	must(srv.SetSecret("restricted/hidden", []byte("hidden")))
	iss, err := conjurdev.NewJWTIssuer("https://issuer.test")
	must(err)
	must(srv.SetSecret("conjur/authn-jwt/"+jwtService+"/public-keys", []byte(iss.PublicKeysJSON())))
	must(srv.SetSecret("conjur/authn-jwt/"+jwtService+"/issuer", []byte(iss.Issuer())))
	must(srv.SetSecret("conjur/authn-jwt/"+jwtService+"/token-app-property", []byte("sub")))
	must(srv.SetSecret("conjur/authn-jwt/"+jwtService+"/identity-path", []byte("swarm")))
	srv.ResetCounts()
	return &devServer{Server: srv, key: key.Reveal(), jwt: iss}
}

// listen serves s over plain HTTP (or TLS) until the test ends.
func (s *devServer) listen(t testing.TB, useTLS bool) *conjurdev.Listener {
	t.Helper()
	l, err := s.Listen("127.0.0.1:0", useTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// secretRequests counts both kinds of secret reads at the server.
func (s *devServer) secretRequests() int64 {
	return s.Count(conjurdev.EpSecret) + s.Count(conjurdev.EpBatch)
}

// clientConfig is a dev (plain HTTP) config for urls with the API key given.
func clientConfig(apiKey string, urls ...string) Config {
	return Config{
		ApplianceURLs: urls,
		Account:       "dev",
		Login:         pluginLogin,
		AllowHTTP:     true,
		APIKey:        redact.String(apiKey),
		FetchTimeout:  2 * time.Second,
	}
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg, quietLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// deadURL is a URL where nothing listens (a listener opened and closed).
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func mustGet(t testing.TB, c *Client, id string) Value {
	t.Helper()
	v, err := c.Get(t.Context(), Ref{ID: id})
	if err != nil {
		t.Fatalf("Get(%s): %+v", id, err)
	}
	return v
}

// fetchAll is GetMany's results as two slices, values[i] and errs[i]
// answering refs[i].
func fetchAll(c *Client, ctx context.Context, refs []Ref) ([]Value, []error) {
	vals := make([]Value, len(refs))
	errs := make([]error, len(refs))
	for i, r := range c.GetMany(ctx, refs) {
		vals[i], errs[i] = r.Value, r.Err
	}
	return vals, errs
}
