package driver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

func TestBootstrapEndpoint(t *testing.T) {
	const good = `{"login":"host/swarm/conjur-plugin","api_key":"key-dddd-4444","account":"dev","appliance_url":"https://conjur.test"}`
	tests := []struct {
		name       string
		body       string
		sinkErr    error
		noSink     bool
		wantStatus int
		wantErr    string
	}{
		{name: "ok/adopted", body: good, wantStatus: http.StatusOK},
		{name: "fail/not JSON", body: "key-dddd-4444", wantStatus: http.StatusBadRequest, wantErr: "[CREDENTIAL_REJECTED]"},
		{name: "fail/too large", body: `{"jwt":"` + strings.Repeat("a", maxCredentialBytes) + `"}`, wantStatus: http.StatusRequestEntityTooLarge, wantErr: "larger than"},
		{name: "fail/not configured", body: good, noSink: true, wantStatus: http.StatusServiceUnavailable, wantErr: "[NOT_CONFIGURED]"},
		{
			name: "fail/refused by Conjur", body: good, wantStatus: http.StatusForbidden, wantErr: "[AUTH_REFUSED]",
			sinkErr: &conjur.Error{Code: errcode.AuthRefused, Msg: "Conjur refused host/swarm/conjur-plugin"},
		},
		{
			name: "fail/Conjur down", body: good, wantStatus: http.StatusBadGateway, wantErr: "[UNAVAILABLE]",
			sinkErr: &conjur.Error{Code: errcode.Unavailable, Msg: "no URL answered"},
		},
		{name: "fail/unexpected", body: good, sinkErr: errors.New("boom"), wantStatus: http.StatusInternalServerError, wantErr: "[INTERNAL]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := demoFetcher()
			sink.adoptErr = tc.sinkErr
			d, logs := newTestDriver(t, sink, &fakeResolver{}, func(o *Options) {
				if tc.noSink {
					o.Conjur = nil
				}
			})
			_, sock := servePlugin(t, d)
			code, body := rawPost(t, sock, pluginapi.PathBootstrap, tc.body)
			if code != tc.wantStatus {
				t.Errorf("status %d, want %d (%s)", code, tc.wantStatus, body)
			}
			if tc.wantErr == "" {
				fp := credential.Credential{Login: "host/swarm/conjur-plugin", APIKey: "key-dddd-4444"}.Fingerprint()
				if !strings.Contains(body, `"ok":true`) || !strings.Contains(body, fp) || len(sink.adopted) != 1 {
					t.Errorf("answer %s, adopted %d", body, len(sink.adopted))
				}
			} else if !strings.Contains(body, tc.wantErr) {
				t.Errorf("answer %s, want %s", body, tc.wantErr)
			}
			for _, e := range logs.All() {
				if strings.Contains(e.Message, "key-dddd") {
					t.Errorf("key in the log message")
				}
				for _, v := range e.ContextMap() {
					if s, ok := v.(string); ok && strings.Contains(s, "key-dddd") {
						t.Errorf("key in the log: %v", e.ContextMap())
					}
				}
			}
			if strings.Contains(body, "key-dddd") {
				t.Errorf("key echoed in the answer: %s", body)
			}
			if n := len(logs.All()); n != 1 {
				t.Errorf("%d log lines for one handoff, want 1", n)
			}
		})
	}
}

func TestBootstrapNeedsPost(t *testing.T) {
	d, _ := newTestDriver(t, demoFetcher(), &fakeResolver{})
	_, sock := servePlugin(t, d)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://plugin"+pluginapi.PathBootstrap, nil)
	resp, err := unixHTTP(sock).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

// TestBootstrapRefusesACredentialForAnotherConjur: the plugin's own check of
// where a handed-over credential belongs, for a sender that does not check
// (an agent of the first release, a script). The plugin is set for account
// dev at https://conjur.test; nothing that does not match reaches Conjur
// (the sink is never called).
func TestBootstrapRefusesACredentialForAnotherConjur(t *testing.T) {
	const key = "key-gggg-7777"
	doc := func(extra string) string {
		return `{"login":"host/swarm/conjur-plugin","api_key":"` + key + `"` + extra + `}`
	}
	tests := []struct {
		name, body, wantErr string
	}{
		{name: "ok/same account and URL", body: doc(`,"account":"dev","appliance_url":"https://conjur.test"`)},
		{name: "ok/one URL in common, written differently", body: doc(`,"account":"dev","appliance_url":"https://other.example, HTTPS://Conjur.Test:443/"`)},
		{name: "ok/jwt form", body: `{"jwt":"aaa.bbb.ccc","account":"dev","appliance_url":"https://conjur.test"}`},
		{name: "fail/another account", body: doc(`,"account":"prod","appliance_url":"https://conjur.test"`),
			wantErr: `the plugin is set for Conjur account \"dev\", the credential for account \"prod\"`},
		{name: "fail/no URL in common", body: doc(`,"account":"dev","appliance_url":"https://conjur.prod.example"`),
			wantErr: `have none in common with the credential's appliance_url (\"https://conjur.prod.example\")`},
		{name: "fail/same host, other port", body: doc(`,"account":"dev","appliance_url":"https://conjur.test:8443"`),
			wantErr: "have none in common"},
		{name: "fail/http for https", body: doc(`,"account":"dev","appliance_url":"http://conjur.test"`),
			wantErr: "have none in common"},
		{name: "fail/undeclared (the first release's form)", body: doc(""),
			wantErr: `does not say which Conjur it belongs to (no \"account\" and no \"appliance_url\")`},
		{name: "fail/no URL", body: doc(`,"account":"dev"`), wantErr: `(no \"appliance_url\")`},
		{name: "fail/empty account", body: doc(`,"account":" ","appliance_url":"https://conjur.test"`), wantErr: `(no \"account\")`},
		{name: "fail/URL not a string", body: doc(`,"account":"dev","appliance_url":["https://conjur.test"]`), wantErr: `field \"appliance_url\" must be a string`},
		{name: "fail/URL with a query", body: doc(`,"account":"dev","appliance_url":"https://conjur.test/?x=1"`), wantErr: "entry 1 is not an http(s) URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := demoFetcher()
			d, logs := newTestDriver(t, sink, &fakeResolver{})
			_, sock := servePlugin(t, d)
			code, body := rawPost(t, sock, pluginapi.PathBootstrap, tc.body)
			if tc.wantErr == "" {
				if code != http.StatusOK || sink.adoptions() != 1 {
					t.Fatalf("status %d, adopted %d: %s", code, sink.adoptions(), body)
				}
				return
			}
			if code != http.StatusBadRequest || !strings.Contains(body, "[CREDENTIAL_REJECTED]") || !strings.Contains(body, tc.wantErr) {
				t.Errorf("status %d, answer %s; want 400 CREDENTIAL_REJECTED with %s", code, body, tc.wantErr)
			}
			if n := sink.adoptions(); n != 0 {
				t.Errorf("the credential reached the Conjur client %d times", n)
			}
			for _, e := range logs.All() {
				for _, v := range e.ContextMap() {
					if s, ok := v.(string); ok && strings.Contains(s, key) {
						t.Errorf("key in the log: %v", e.ContextMap())
					}
				}
			}
			if strings.Contains(body, key) {
				t.Errorf("key echoed: %s", body)
			}
		})
	}
}
