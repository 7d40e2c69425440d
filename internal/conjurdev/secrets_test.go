package conjurdev

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

func TestRetrieveSecret(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	tests := []struct {
		name       string
		id         string
		want       []byte
		wantStatus int
		wantMsg    string
	}{
		{name: "ok/execute", id: "apps/demo/db-password", want: []byte("demo-db-password-0001")},
		{name: "ok/other-app", id: "apps/shop/api-token", want: []byte("shop-api-token-0001")},
		{name: "ok/binary", id: "apps/demo/tls-key", want: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff}},
		{name: "fail/read-only-is-forbidden", id: "apps/demo/read-only", wantStatus: 403},
		{name: "fail/invisible-is-not-found", id: "restricted/admin-password", wantStatus: 404,
			wantMsg: "CONJ00076E Variable dev:variable:restricted/admin-password is empty or not found."},
		{name: "fail/missing", id: "apps/demo/nope", wantStatus: 404,
			wantMsg: "CONJ00076E Variable dev:variable:apps/demo/nope is empty or not found."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plugin.RetrieveSecret(tt.id)
			if tt.wantStatus != 0 {
				if statusOf(err) != tt.wantStatus {
					t.Fatalf("RetrieveSecret(%q) error = %v, want HTTP %d", tt.id, err, tt.wantStatus)
				}
				if tt.wantMsg != "" && (conjurErr(err).Details == nil || conjurErr(err).Details.Message != tt.wantMsg) {
					t.Errorf("error details = %+v, want message %q", conjurErr(err).Details, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("RetrieveSecret(%q): %v", tt.id, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("RetrieveSecret(%q) = %q, want %q", tt.id, got, tt.want)
			}
		})
	}
}

func TestRetrieveSecret_adminSeesEverything(t *testing.T) {
	e := newEnv(t)
	got, err := e.admin().RetrieveSecret("restricted/admin-password")
	if err != nil || string(got) != "restricted-0001" {
		t.Fatalf("admin RetrieveSecret = %q, %v; want the value", got, err)
	}
}

func TestRetrieveSecret_contentType(t *testing.T) {
	e := newEnv(t)
	if _, err := e.srv.LoadConjurPolicy(ModePatch, "root", []byte(`
- !variable
  id: typed
  mime_type: application/json
`)); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SetSecret("typed", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	hdr := e.tokenHeader(e.admin())
	for _, tt := range []struct{ id, want string }{
		{"typed", "application/json"},
		{"apps/demo/db-password", "application/octet-stream"},
	} {
		resp, _ := e.do("GET", "/secrets/dev/variable/"+url.PathEscape(tt.id), "", map[string]string{"Authorization": hdr})
		if got := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || got != tt.want {
			t.Errorf("%s: status %d Content-Type %q, want 200 %q", tt.id, resp.StatusCode, got, tt.want)
		}
	}
}

func TestVersions(t *testing.T) {
	e := newEnv(t)
	admin := e.admin()
	const id = "apps/shop/db-password"
	// The demo value is version 1; add 24 more, so 25 exist and 20 are kept.
	for i := 2; i <= 25; i++ {
		if err := admin.AddSecret(id, fmt.Sprintf("value-%02d", i)); err != nil {
			t.Fatalf("AddSecret %d: %v", i, err)
		}
	}
	plugin := e.plugin()
	latest, err := plugin.RetrieveSecret(id)
	if err != nil || string(latest) != "value-25" {
		t.Fatalf("latest = %q, %v; want value-25", latest, err)
	}
	v6, err := plugin.RetrieveSecretWithVersion(id, 6)
	if err != nil || string(v6) != "value-06" {
		t.Fatalf("version 6 = %q, %v; want value-06", v6, err)
	}
	for _, v := range []int{1, 5, 26} {
		if _, err := plugin.RetrieveSecretWithVersion(id, v); statusOf(err) != 404 {
			t.Errorf("version %d: error %v, want 404 (only the last 20 are kept)", v, err)
		}
	}
}

func TestAddSecret(t *testing.T) {
	e := newEnv(t)
	t.Run("ok/admin", func(t *testing.T) {
		if err := e.admin().AddSecret("apps/demo/api-token", "rotated"); err != nil {
			t.Fatalf("AddSecret: %v", err)
		}
		got, err := e.plugin().RetrieveSecret("apps/demo/api-token")
		if err != nil || string(got) != "rotated" {
			t.Fatalf("after set = %q, %v", got, err)
		}
	})
	t.Run("ok/raw-body-not-form", func(t *testing.T) {
		// The client labels the body form-urlencoded; it must be kept raw.
		v := "a=b&c=%20d+e"
		if err := e.admin().AddSecret("apps/demo/api-token", v); err != nil {
			t.Fatal(err)
		}
		got, _ := e.plugin().RetrieveSecret("apps/demo/api-token")
		if string(got) != v {
			t.Fatalf("stored %q, want %q", got, v)
		}
	})
	t.Run("fail/no-update-privilege", func(t *testing.T) {
		if err := e.plugin().AddSecret("apps/demo/api-token", "x"); statusOf(err) != 403 {
			t.Fatalf("error %v, want 403", err)
		}
	})
	t.Run("fail/invisible", func(t *testing.T) {
		if err := e.plugin().AddSecret("restricted/admin-password", "x"); statusOf(err) != 404 {
			t.Fatalf("error %v, want 404", err)
		}
	})
	t.Run("fail/empty", func(t *testing.T) {
		err := e.admin().AddSecret("apps/demo/api-token", "")
		if statusOf(err) != 422 {
			t.Fatalf("error %v, want 422", err)
		}
		if d := conjurErr(err).Details; d == nil || d.Code != "argument_error" {
			t.Errorf("details %+v, want code argument_error", d)
		}
	})
}

func TestBatch(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	t.Run("ok/strings", func(t *testing.T) {
		got, err := plugin.RetrieveBatchSecrets([]string{"apps/demo/db-password", "apps/shop/db-password"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]byte{
			"dev:variable:apps/demo/db-password": []byte("demo-db-password-0001"),
			"dev:variable:apps/shop/db-password": []byte("shop-db-password-0001"),
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("batch (-want +got):\n%s", d)
		}
	})
	t.Run("ok/base64-binary", func(t *testing.T) {
		got, err := plugin.RetrieveBatchSecretsSafe([]string{"apps/demo/tls-key", "apps/demo/api-token"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]byte{
			"dev:variable:apps/demo/tls-key":   {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff},
			"dev:variable:apps/demo/api-token": []byte("demo-api-token-0001"),
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("batch (-want +got):\n%s", d)
		}
	})
	fails := []struct {
		name   string
		ids    []string
		status int
	}{
		{"fail/binary-without-base64-is-406", []string{"apps/demo/db-password", "apps/demo/tls-key"}, 406},
		{"fail/one-forbidden-fails-all", []string{"apps/demo/db-password", "apps/demo/read-only"}, 403},
		{"fail/invisible-existing-is-403", []string{"apps/demo/db-password", "restricted/admin-password"}, 403},
		{"fail/one-missing-fails-all", []string{"apps/demo/db-password", "apps/demo/nope"}, 404},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plugin.RetrieveBatchSecrets(tt.ids)
			if statusOf(err) != tt.status {
				t.Fatalf("error %v, want %d", err, tt.status)
			}
		})
	}
	t.Run("fail/missing-names-first", func(t *testing.T) {
		_, err := plugin.RetrieveBatchSecrets([]string{"apps/demo/db-password", "apps/x/one", "apps/x/two"})
		if ce := conjurErr(err); ce == nil || ce.Details == nil || !strings.Contains(ce.Details.Message, "apps/x/one") {
			t.Fatalf("error %v, want 404 naming apps/x/one", err)
		}
	})
	t.Run("ok/both-paths", func(t *testing.T) {
		hdr := e.tokenHeader(plugin)
		q := "?variable_ids=" + url.QueryEscape("dev:variable:apps/demo/db-password")
		for _, p := range []string{"/secrets", "/secrets/"} {
			resp, body := e.do("GET", p+q, "", map[string]string{"Authorization": hdr})
			if resp.StatusCode != 200 || !strings.Contains(body, "demo-db-password-0001") {
				t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
			}
		}
	})
	t.Run("ok/base64-header", func(t *testing.T) {
		hdr := e.tokenHeader(plugin)
		q := "?variable_ids=" + url.QueryEscape("dev:variable:apps/demo/tls-key")
		resp, body := e.do("GET", "/secrets/"+q, "", map[string]string{"Authorization": hdr, "Accept-Encoding": "base64"})
		want := `{"dev:variable:apps/demo/tls-key":"` + base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff}) + `\n"}` // Ruby's encode64 ends with a newline
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "base64" || body != want {
			t.Errorf("got %d %q %s, want 200 base64 %s", resp.StatusCode, resp.Header.Get("Content-Encoding"), body, want)
		}
	})
	t.Run("ok/long-base64-lines", func(t *testing.T) {
		long := bytes.Repeat([]byte{0xfe}, 200)
		if err := e.srv.SetSecret("apps/shop/api-token", long); err != nil {
			t.Fatal(err)
		}
		got, err := plugin.RetrieveBatchSecretsSafe([]string{"apps/shop/api-token"})
		if err != nil || !bytes.Equal(got["dev:variable:apps/shop/api-token"], long) {
			t.Fatalf("got %d bytes, %v", len(got["dev:variable:apps/shop/api-token"]), err)
		}
	})
	t.Run("fail/duplicate-ids-404-naming-none", func(t *testing.T) {
		// Conjur counts the rows found against the ids given, then names
		// the first id it did not find: there is none.
		a := "dev:variable:apps/demo/db-password"
		resp, body := e.do("GET", "/secrets/?variable_ids="+url.QueryEscape(a+","+a), "", map[string]string{"Authorization": e.tokenHeader(plugin)})
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"CONJ00076E Variable  is empty or not found."`) {
			t.Errorf("duplicates: %d %s, want 404 CONJ00076E naming no variable", resp.StatusCode, body)
		}
	})
	t.Run("fail/blank-ids-422", func(t *testing.T) {
		hdr := e.tokenHeader(plugin)
		a := "dev:variable:apps/demo/db-password"
		for _, q := range []string{"", "?variable_ids=", "?variable_ids=" + url.QueryEscape(",,,"), "?variable_ids=" + url.QueryEscape(a+",,"+a)} {
			resp, body := e.do("GET", "/secrets/"+q, "", map[string]string{"Authorization": hdr})
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "argument_error") {
				t.Errorf("GET /secrets/%s: %d %s, want 422 argument_error", q, resp.StatusCode, body)
			}
		}
	})
}

func TestRedaction(t *testing.T) {
	opts := Options{Account: "dev", AdminAPIKey: "SECRET-ADMIN-KEY"}
	res := LoadResult{CreatedRoles: map[string]redact.String{"dev:host:x": "SECRET-HOST-KEY"}, Version: 2}
	iss := testIssuer(t)
	for _, v := range []any{opts, &opts, res, &res, iss} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			if got := fmt.Sprintf(verb, v); strings.Contains(got, "SECRET") || strings.Contains(got, "PRIVATE") {
				t.Errorf("%s of %T leaks: %s", verb, v, got)
			}
		}
	}
	for _, v := range []any{opts, res} {
		b, err := json.Marshal(v)
		if err != nil || strings.Contains(string(b), "SECRET") {
			t.Errorf("JSON of %T leaks or fails: %s %v", v, b, err)
		}
	}
	if got := fmt.Sprintf("%+v", iss); !strings.Contains(got, redacted) || strings.Contains(got, iss.key.N.String()[:20]) {
		t.Errorf("JWTIssuer prints %s", got)
	}
	if !strings.Contains(res.String(), "dev:host:x") {
		t.Errorf("LoadResult.String() should name the roles: %s", res)
	}
}
