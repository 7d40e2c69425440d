package conjur

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

// The single-variable and batch requests this package builds have the URLs
// conjur-api-go builds for the same variables and version, on every kind of
// appliance URL;
// the ids conjur-api-go would resolve ("." and "..") go through it instead.
func TestSecretURLIsConjurAPIGos(t *testing.T) {
	ids := []string{"apps/db-password", "a b/c?d#e%f", "x:y:z", "ünï/cødé", "apps/./x", "a/../b", "prod/my+var", "trailing/"}
	for _, base := range []string{
		"http://127.0.0.1:8080",
		"https://conjur.example.com/",
		"https://conjur.example.com/prefix/path",
		"https://myorg.secretsmgr.cyberark.cloud",
		"https://myorg.secretsmgr.cyberark.cloud/api",
	} {
		cfg := Config{ApplianceURLs: []string{base}, Account: "myorg", FetchTimeout: time.Second}
		ep, err := newEndpoint(cfg, base)
		if err != nil {
			t.Fatal(err)
		}
		c, err := conjurapi.NewClient(conjurapi.Config{Account: "myorg", ApplianceURL: base, CredentialStorage: conjurapi.CredentialStorageNone, Environment: cfg.environmentFor(base)}, conjurapi.NewTelemetry("conjur-swarm", "secret-driver", "", "", ""))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ep.secrets.source, c.GetTelemetryHeader(); got != want {
			t.Errorf("%s: Conjur-Source %q, want %q", base, got, want)
		}
		for _, id := range ids {
			for _, version := range []int{0, 3} {
				var req, err = c.RetrieveSecretRequest("myorg:variable:" + id)
				if version > 0 {
					req, err = c.RetrieveSecretWithVersionRequest("myorg:variable:"+id, version)
				}
				if err != nil {
					t.Fatal(err)
				}
				got, ok := ep.secrets.url(id, version)
				if !ok {
					t.Errorf("%s %q v%d: not built here, want %s", base, id, version, req.URL)
					continue
				}
				if got != req.URL.String() {
					t.Errorf("%s %q v%d: URL %s, want conjur-api-go's %s", base, id, version, got, req.URL)
				}
			}
		}
		var full []string
		for _, id := range ids {
			full = append(full, "myorg:variable:"+id)
		}
		req, err := c.RetrieveBatchSecretsRequest(full, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := ep.secrets.batch + url.QueryEscape(strings.Join(full, ",")); ep.secrets.batch == "" || got != req.URL.String() {
			t.Errorf("%s: batch URL %s, want conjur-api-go's %s", base, got, req.URL)
		}
		for _, id := range []string{".", ".."} {
			if u, ok := ep.secrets.url(id, 0); ok {
				t.Errorf("%s %q: built here as %s, want it left to conjur-api-go", base, id, u)
			}
		}
	}
}
