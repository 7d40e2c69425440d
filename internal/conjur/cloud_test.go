package conjur

import (
	"strings"
	"testing"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

func TestCloudDetection(t *testing.T) {
	tests := []struct {
		name, url, env string
		cloud          bool
		want           conjurapi.EnvironmentType
	}{
		{"ok/tenant-url-is-cloud", "https://myorg.secretsmgr.cyberark.cloud", "", true, conjurapi.EnvironmentSaaS},
		{"ok/tenant-url-with-api", "https://myorg.secretsmgr.cyberark.cloud/api", "", true, conjurapi.EnvironmentSaaS},
		{"ok/other-suffix", "https://MyOrg-secretsmanager.integration-cyberark.cloud", "", true, conjurapi.EnvironmentSaaS},
		{"ok/self-hosted", "https://conjur.example.com", "", false, conjurapi.EnvironmentSH},
		{"ok/look-alike-is-not-cloud", "https://secretsmgr.cyberark.cloud.example.com", "", false, conjurapi.EnvironmentSH},
		{"ok/http-is-never-cloud", "http://myorg.secretsmgr.cyberark.cloud", "", false, conjurapi.EnvironmentSH},
		{"ok/forced-saas-under-api", "https://127.0.0.1:8443/api", "saas", false, conjurapi.EnvironmentSaaS},
		{"ok/forced-self-hosted", "https://myorg.secretsmgr.cyberark.cloud", "self-hosted", true, conjurapi.EnvironmentSH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsCloudURL(tt.url); got != tt.cloud {
				t.Errorf("IsCloudURL(%q) = %v, want %v", tt.url, got, tt.cloud)
			}
			if got := (Config{Environment: tt.env}).environmentFor(tt.url); got != tt.want {
				t.Errorf("environment %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCloudConfig(t *testing.T) {
	cloud := Config{ApplianceURLs: []string{"https://myorg.secretsmgr.cyberark.cloud"}, Login: pluginLogin}
	if err := cloud.Validate(); err != nil {
		t.Fatalf("a Conjur Cloud URL without CONJUR_ACCOUNT: %v", err)
	}
	if got := cloud.withDefaults().Account; got != CloudAccount {
		t.Errorf("account %q, want %q", got, CloudAccount)
	}
	mixed := cloud
	mixed.ApplianceURLs = append(mixed.ApplianceURLs, "https://conjur.example.com")
	if err := mixed.Validate(); err == nil || !strings.Contains(err.Error(), "CONJUR_ACCOUNT is not set") {
		t.Errorf("a self-hosted URL without CONJUR_ACCOUNT: %v, want the account asked for", err)
	}
	bad := cloud
	bad.Environment = "enterprise"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "CONJUR_ENVIRONMENT") {
		t.Errorf("environment %q: %v, want it refused by name", bad.Environment, err)
	}
}
