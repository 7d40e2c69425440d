package conjur

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/credential"
)

// A proxy or appliance in front of Conjur that echoes the request body in
// its error page (some WAF and load-balancer pages do) must not carry the
// API key or the JWT sent to authenticate into an error, the status or a log
// line; and a huge error page must not be copied whole into the message.
func TestAuthErrorsNeverEchoTheCredential(t *testing.T) {
	const key = "echoed-api-key-3x7k"
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJlY2hvZWQifQ.c2lnbmF0dXJlZWNobw"
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusInternalServerError, http.StatusBadGateway} {
		for _, kind := range []string{"api_key", "jwt"} {
			t.Run(fmt.Sprintf("fail/%s answered %d", kind, status), func(t *testing.T) {
				echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					w.WriteHeader(status)
					fmt.Fprintf(w, "request rejected: %s %s", body, strings.Repeat("x", 64<<10))
				}))
				t.Cleanup(echo.Close)
				var buf strings.Builder
				log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel))
				cfg := clientConfig("", echo.URL)
				cred := credential.Credential{Login: pluginLogin, APIKey: key}
				if kind == "jwt" {
					cfg.Login, cfg.JWTServiceID = "", "swarm"
					cred = credential.Credential{JWT: jwt}
				}
				c, err := New(cfg, log)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				adoptErr := c.Adopt(t.Context(), cred)
				if adoptErr == nil {
					t.Fatal("Adopt succeeded against an echoing server")
				}
				st, err := json.Marshal(c.Status())
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				texts := []string{fmt.Sprintf("%v", adoptErr), fmt.Sprintf("%+v", adoptErr), string(st), buf.String()}
				for _, s := range texts {
					for _, secret := range []string{key, jwt} {
						if strings.Contains(s, secret) {
							t.Fatalf("the credential reached an error, the status or the log: %.300s", s)
						}
					}
				}
				// The message and its cause each hold the (bounded) page once.
				if n := len(fmt.Sprintf("%+v", adoptErr)); n > 3*maxErrorBody {
					t.Fatalf("the error is %d bytes long: the error page was copied whole", n)
				}
			})
		}
	}
}

// The same for a fetch: an error page that echoes the request headers must
// not carry the access token (a bearer credential) into the error.
func TestFetchErrorsNeverEchoTheAccessToken(t *testing.T) {
	payload := base64.StdEncoding.EncodeToString([]byte(`{"sub":"host/swarm/conjur-plugin","iat":1700000000,"exp":1700000480}`))
	token := `{"protected":"eyJhbGciOiJjb25qdXIifQ==","payload":"` + payload + `","signature":"c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3Qtc2hvdw=="}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/authenticate") {
			_, _ = io.WriteString(w, token)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "upstream failed for request with Authorization: %s", r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	var buf strings.Builder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel))
	c, err := New(clientConfig("k3y-3x7k-echo", srv.URL), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, getErr := c.Get(t.Context(), Ref{ID: "apps/x"})
	if getErr == nil {
		t.Fatal("Get succeeded against a failing server")
	}
	st, _ := json.Marshal(c.Status())
	c.Close()
	sent := base64.StdEncoding.EncodeToString([]byte(token))
	for _, s := range []string{fmt.Sprintf("%v", getErr), fmt.Sprintf("%+v", getErr), string(st), buf.String()} {
		if strings.Contains(s, sent[:40]) || strings.Contains(s, "c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3Qtc2hvdw") {
			t.Fatalf("the access token reached an error, the status or the log: %.400s", s)
		}
	}
}

// A redirect is never followed: a 307 or 308 would make net/http send the
// API key (the body) again, to wherever the Location points.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var hits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(elsewhere.Close)
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, status)
		}))
		t.Cleanup(front.Close)
		c := newClient(t, clientConfig("", front.URL))
		if err := c.Adopt(t.Context(), credential.Credential{Login: pluginLogin, APIKey: "k3y-redirected"}); err == nil {
			t.Fatalf("%d: Adopt succeeded through a redirect", status)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}
