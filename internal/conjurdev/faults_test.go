package conjurdev

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

func TestFaults(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	if _, err := plugin.RetrieveSecret("apps/demo/db-password"); err != nil {
		t.Fatal(err)
	}
	f := e.srv.Faults()

	t.Run("fail/status", func(t *testing.T) {
		defer f.Reset()
		f.SetStatus(503, 1)
		_, err := plugin.RetrieveSecret("apps/demo/db-password")
		if statusOf(err) != 503 {
			t.Fatalf("error %v, want 503", err)
		}
	})
	t.Run("ok/status-rate-zero-clears", func(t *testing.T) {
		defer f.Reset()
		f.SetStatus(503, 1)
		f.SetStatus(503, 0)
		if _, err := plugin.RetrieveSecret("apps/demo/db-password"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/drop", func(t *testing.T) {
		defer f.Reset()
		f.SetDrop(1)
		_, err := plugin.RetrieveSecret("apps/demo/db-password")
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Fatalf("error %v (%T), want a transport error", err, err)
		}
	})
	t.Run("fail/read-only-refuses-writes", func(t *testing.T) {
		defer f.Reset()
		f.SetReadOnly(true)
		admin := e.admin()
		if err := admin.AddSecret("apps/demo/api-token", "x"); statusOf(err) != 405 {
			t.Fatalf("set on a follower: %v, want 405", err)
		}
		if _, err := admin.LoadPolicy(conjurapi.PolicyModePatch, "root", strings.NewReader("- !variable x\n")); statusOf(err) != 405 {
			t.Fatalf("load on a follower: %v, want 405", err)
		}
		if _, err := admin.RotateHostAPIKey("swarm/conjur-plugin"); statusOf(err) != 405 {
			t.Fatalf("rotate on a follower: %v, want 405", err)
		}
		if got, err := plugin.RetrieveSecret("apps/demo/db-password"); err != nil || string(got) != "demo-db-password-0001" {
			t.Fatalf("read on a follower: %q, %v", got, err)
		}
	})
	t.Run("ok/latency-honours-client-deadline", func(t *testing.T) {
		defer f.Reset()
		f.SetLatency(time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/", nil)
		c := &http.Client{}
		defer c.CloseIdleConnections()
		_, err := c.Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want the client's deadline to pass while the server waits", err)
		}
	})
}

func TestCounts(t *testing.T) {
	e := newEnv(t)
	plugin := e.plugin()
	e.srv.ResetCounts()
	for i := 0; i < 3; i++ {
		if _, err := plugin.RetrieveSecret("apps/demo/db-password"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := plugin.RetrieveBatchSecrets([]string{"apps/demo/db-password"}); err != nil {
		t.Fatal(err)
	}
	e.srv.Faults().SetStatus(500, 1)
	_, _ = plugin.RetrieveSecret("apps/demo/db-password")
	e.srv.Faults().Reset()
	got := e.srv.Counts()
	if got[EpAuthn] != 1 || got[EpSecret] != 4 || got[EpBatch] != 1 {
		t.Fatalf("counts %v, want authn 1, secret 4 (one faulted), batch 1", got)
	}
	if e.srv.Count(EpSecret) != 4 || e.srv.Count("no-such") != 0 {
		t.Fatalf("Count mismatch")
	}
	e.srv.ResetCounts()
	if e.srv.Count(EpSecret) != 0 {
		t.Fatalf("ResetCounts left %d", e.srv.Count(EpSecret))
	}
}

func TestListenTLS(t *testing.T) {
	srv, err := New(Options{AdminAPIKey: adminKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.LoadDemo("../../docs/examples"); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !strings.HasPrefix(l.URL, "https://127.0.0.1:") || len(l.CAPEM) == 0 {
		t.Fatalf("listener %q with CA %d bytes", l.URL, len(l.CAPEM))
	}
	port := l.URL[strings.LastIndex(l.URL, ":")+1:]
	for _, base := range []string{l.URL, "https://localhost:" + port} {
		e := &env{t: t, srv: srv, url: base, ca: l.CAPEM}
		got, err := e.plugin().RetrieveSecret("apps/demo/db-password")
		if err != nil || string(got) != "demo-db-password-0001" {
			t.Fatalf("over %s: %q, %v", base, got, err)
		}
	}
	// Without the CA the client refuses the certificate.
	e := &env{t: t, srv: srv, url: l.URL, ca: []byte(testOtherCA(t))}
	if _, err := e.plugin().RetrieveSecret("apps/demo/db-password"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("with another CA: %v, want a certificate error", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestListenPlain(t *testing.T) {
	srv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l.URL, "http://127.0.0.1:") || l.CAPEM != nil {
		t.Fatalf("listener %q CA %v", l.URL, l.CAPEM)
	}
	c := &http.Client{}
	resp, err := c.Get(l.URL + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status page: %v %v", resp, err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
}

func testOtherCA(t *testing.T) string {
	t.Helper()
	ca, err := newCertAuthority()
	if err != nil {
		t.Fatal(err)
	}
	return string(ca.caPEM)
}

func TestStatusEndpoints(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path, accept string
		status             int
		ctype, body        string
	}{
		{"ok/root-json", "/", "application/json, text/html", 200, "application/json", `{"version":"1.24.0"}`},
		{"ok/root-html", "/", "text/html", 200, "text/html", "<dd>Version 1.24.0</dd>"},
		{"fail/health-is-enterprise-only", "/health", "", 404, "application/json", `"not_found"`},
		{"ok/authenticators", "/authenticators", "", 200, "application/json", `"enabled":["authn"]`},
		{"fail/enterprise-info-is-absent", "/info", "", 404, "application/json", `"not_found"`},
		{"fail/unknown-route", "/nope", "", 404, "application/json", `"not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.accept != "" {
				hdr["Accept"] = tt.accept
			}
			resp, body := e.do("GET", tt.path, "", hdr)
			if resp.StatusCode != tt.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) || !strings.Contains(body, tt.body) {
				t.Fatalf("GET %s: %d %q %s; want %d %s containing %s", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, tt.status, tt.ctype, tt.body)
			}
		})
	}
}

func TestListenTLS_ipv6(t *testing.T) {
	srv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen("[::1]:0", true)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no IPv6 loopback here (CI=true: give the machine ::1): %v", err)
		}
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer l.Close()
	if !strings.HasPrefix(l.URL, "https://[::1]:") {
		t.Fatalf("URL %s", l.URL)
	}
	e := &env{t: t, srv: srv, url: l.URL, ca: l.CAPEM}
	if _, err := e.admin().WhoAmI(); err != nil {
		t.Fatalf("over ::1: %v", err)
	}
}
