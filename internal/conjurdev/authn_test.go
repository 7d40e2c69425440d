package conjurdev

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi/authn"
)

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	key, _ := e.srv.APIKey(pluginRole)
	tests := []struct {
		name, login, key string
		ok               bool
	}{
		{"ok/host", pluginLogin, key, true},
		{"ok/admin-user", "admin", adminKey, true},
		{"fail/wrong-key", pluginLogin, key + "x", false},
		{"fail/empty-key", pluginLogin, "", false},
		{"fail/unknown-host", "host/swarm/nobody", key, false},
		{"fail/admin-key-for-host", pluginLogin, adminKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client(tt.login, tt.key)
			tok, err := c.Authenticate(authn.LoginPair{Login: tt.login, APIKey: tt.key})
			if !tt.ok {
				if statusOf(err) != 401 {
					t.Fatalf("Authenticate error %v, want 401", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			parsed, err := authn.NewToken(tok)
			if err != nil {
				t.Fatalf("the client cannot parse the token: %v", err)
			}
			if parsed.ShouldRefresh() {
				t.Errorf("a fresh token should not need a refresh")
			}
			var p tokenClaims
			raw, _ := base64.StdEncoding.DecodeString(parsed.Payload)
			if err := json.Unmarshal(raw, &p); err != nil || p.Sub != tt.login || p.Exp-p.Iat != int64((8*time.Minute).Seconds()) {
				t.Errorf("payload %s (%v): want sub %q and an 8 minute lifetime", raw, err, tt.login)
			}
		})
	}
}

func TestAuthenticate_base64AndRawBody(t *testing.T) {
	e := newEnv(t)
	key, _ := e.srv.APIKey(pluginRole)
	path := "/authn/dev/" + url.QueryEscape(pluginLogin) + "/authenticate"
	// form-looking key text must not be parsed as a form
	resp, body := e.do("POST", path, key, map[string]string{"Accept-Encoding": "base64", "Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "base64" {
		t.Fatalf("status %d encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	tok, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		t.Fatalf("body is not base64: %v", err)
	}
	if _, err := authn.NewToken(tok); err != nil {
		t.Fatalf("decoded token: %v", err)
	}
	resp, body = e.do("POST", path, key, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || !strings.HasPrefix(body, `{"protected":`) {
		t.Fatalf("without base64: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Encoding"), body)
	}
	resp, body = e.do("POST", "/authn/dev/"+url.QueryEscape(pluginLogin)+"/authenticate", "wrong", nil)
	if resp.StatusCode != 401 || body != "" {
		t.Fatalf("wrong key: %d %q, want 401 and an empty body", resp.StatusCode, body)
	}
	resp, _ = e.do("POST", "/authn/other/admin/authenticate", adminKey, nil)
	if resp.StatusCode != 401 {
		t.Fatalf("other account: %d, want 401", resp.StatusCode)
	}
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	good := e.tokenHeader(e.plugin())
	forged := func() string {
		raw, _ := tokenFromHeader(good)
		var tj tokenJSON
		_ = json.Unmarshal(raw, &tj)
		p, _ := json.Marshal(tokenClaims{Sub: "admin", Iat: time.Now().Unix(), Exp: time.Now().Add(time.Hour).Unix()})
		tj.Payload = base64.StdEncoding.EncodeToString(p)
		b, _ := json.Marshal(tj)
		return `Token token="` + base64.StdEncoding.EncodeToString(b) + `"`
	}()
	tests := []struct {
		name, header, want string
	}{
		{"fail/missing", "", "Authorization missing"},
		// conjur-rack 5.0.0 (gems/conjur-rack in Conjur 1.24): a header not
		// matching ^Token token="(.*)" is no token at all.
		{"fail/not-a-token", "Bearer abc", "Authorization missing"},
		{"fail/json-but-not-a-token", `Token token="` + base64.StdEncoding.EncodeToString([]byte(`{"a":1}`)) + `"`, "Unauthorized: Invalid token"},
		{"fail/not-base64", `Token token="%%%"`, "Malformed authorization token"},
		{"fail/not-json", `Token token="` + base64.StdEncoding.EncodeToString([]byte("nope")) + `"`, "Malformed authorization token"},
		{"fail/forged-payload", forged, "Unauthorized: Invalid token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.header != "" {
				hdr["Authorization"] = tt.header
			}
			resp, body := e.do("GET", "/secrets/dev/variable/apps%2Fdemo%2Fdb-password", "", hdr)
			if resp.StatusCode != 401 || body != tt.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Fatalf("got %d %q (%s), want 401 %q text/plain", resp.StatusCode, body, resp.Header.Get("Content-Type"), tt.want)
			}
		})
	}
	t.Run("ok/good", func(t *testing.T) {
		resp, body := e.do("GET", "/secrets/dev/variable/apps%2Fdemo%2Fdb-password", "", map[string]string{"Authorization": good})
		if resp.StatusCode != 200 || body != "demo-db-password-0001" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
}

func TestExpireTokens_clientRefreshes(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	if _, err := plugin.RetrieveSecret("apps/demo/db-password"); err != nil {
		t.Fatal(err)
	}
	e.srv.ExpireTokens()
	_, err := plugin.RetrieveSecret("apps/demo/db-password")
	if statusOf(err) != 401 || !strings.Contains(err.Error(), "Unauthorized: Invalid token") {
		t.Fatalf("after ExpireTokens: %v, want 401 Unauthorized: Invalid token", err)
	}
	if err := plugin.ForceRefreshToken(); err != nil {
		t.Fatalf("ForceRefreshToken: %v", err)
	}
	if got, err := plugin.RetrieveSecret("apps/demo/db-password"); err != nil || string(got) != "demo-db-password-0001" {
		t.Fatalf("after refresh: %q, %v", got, err)
	}
}

func TestTokenTTL_expiresOnServerClock(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TokenTTL = 30 * time.Second })
	plugin := e.plugin()
	if _, err := plugin.RetrieveSecret("apps/demo/db-password"); err != nil {
		t.Fatal(err)
	}
	e.srv.clockMu.Lock()
	e.srv.clock = func() time.Time { return time.Now().Add(31 * time.Second) }
	e.srv.clockMu.Unlock()
	if _, err := plugin.RetrieveSecret("apps/demo/db-password"); statusOf(err) != 401 {
		t.Fatalf("expired token: %v, want 401", err)
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	key, _ := e.srv.APIKey(pluginRole)
	got, err := c.Login(pluginLogin, key)
	if err != nil || string(got) != key {
		t.Fatalf("Login = %q, %v; want the API key", got, err)
	}
	if _, err := c.Login(pluginLogin, "wrong"); statusOf(err) != 401 {
		t.Fatalf("Login with a wrong key: %v, want 401", err)
	}
}

func TestRotateAPIKey(t *testing.T) {
	e := newEnv(t)
	old, _ := e.srv.APIKey(pluginRole)
	t.Run("ok/admin-rotates-host", func(t *testing.T) {
		nk, err := e.admin().RotateHostAPIKey("swarm/conjur-plugin")
		if err != nil {
			t.Fatal(err)
		}
		if string(nk) == old || len(nk) == 0 {
			t.Fatalf("new key %q equals the old one", nk)
		}
		if cur, _ := e.srv.APIKey(pluginRole); cur != string(nk) {
			t.Fatalf("server key %q, client got %q", cur, nk)
		}
		if _, err := e.client(pluginLogin, old).RetrieveSecret("apps/demo/db-password"); statusOf(err) != 401 {
			t.Fatalf("old key still works: %v", err)
		}
		if _, err := e.client(pluginLogin, string(nk)).RetrieveSecret("apps/demo/db-password"); err != nil {
			t.Fatalf("new key: %v", err)
		}
	})
	t.Run("fail/host-rotates-admin", func(t *testing.T) {
		_, err := e.plugin().RotateUserAPIKey("admin")
		if s := statusOf(err); s != 404 && s != 403 {
			t.Fatalf("error %v, want 403 or 404", err)
		}
	})
	t.Run("ok/self-with-basic", func(t *testing.T) {
		cur, _ := e.srv.APIKey(pluginRole)
		req, _ := http.NewRequest(http.MethodPut, e.url+"/authn/dev/api_key", nil)
		req.SetBasicAuth(pluginLogin, cur)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		now, _ := e.srv.APIKey(pluginRole)
		if resp.StatusCode != 200 || now == cur {
			t.Fatalf("status %d, key changed %v", resp.StatusCode, now != cur)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}

func TestWhoAmIAndVersion(t *testing.T) {
	e := newEnv(t)
	c := e.plugin()
	b, err := c.WhoAmI()
	if err != nil {
		t.Fatal(err)
	}
	var who map[string]string
	if err := json.Unmarshal(b, &who); err != nil || who["username"] != pluginLogin || who["account"] != "dev" || who["client_ip"] != "127.0.0.1" {
		t.Fatalf("whoami %s (%v)", b, err)
	}
	v, err := c.ServerVersion()
	if err != nil || v != Version {
		t.Fatalf("ServerVersion = %q, %v; want %s", v, err, Version)
	}
	if err := c.VerifyMinServerVersion("1.21.1"); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	admin := e.admin()
	var wg sync.WaitGroup
	var mu sync.Mutex // conjur-api-go clients are not safe for concurrent token refresh
	errs := make(chan error, 100)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				mu.Lock()
				_, err := plugin.RetrieveSecret("apps/demo/db-password")
				if statusOf(err) == 401 { // tokens were expired meanwhile: refresh once
					if err = plugin.ForceRefreshToken(); err == nil {
						_, err = plugin.RetrieveSecret("apps/demo/db-password")
					}
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
				if i == 0 {
					if err := e.srv.SetSecret("apps/demo/api-token", []byte("v")); err != nil {
						errs <- err
					}
					mu.Lock() // expire between whole fetches, never inside one
					e.srv.ExpireTokens()
					mu.Unlock()
				}
			}
		}(i)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for j := 0; j < 5; j++ {
			_, err := e.srv.LoadConjurPolicy(ModePatch, "apps", []byte("- !variable extra/x\n"))
			if err != nil && statusOfStatusErr(err) != 409 {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_ = admin
}

func statusOfStatusErr(err error) int {
	if se, ok := err.(*StatusError); ok {
		return se.Status
	}
	return 0
}
