package conjur

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

// Conjur Cloud (Secrets Manager SaaS). conjur-api-go recognises its URLs
// (https://TENANT.secretsmgr.cyberark.cloud and the other suffixes of
// conjurapi.ConjurCloudRegexp): it puts every request under /api and, with
// no account given, uses the account "conjur". This package follows it:
// the environment is detected from the URL unless CONJUR_ENVIRONMENT says
// otherwise, and is handed to conjur-api-go explicitly, so that the library
// never probes the appliance to guess it.
//
// The plugin keeps using the v1 batch endpoint (GET /secrets?variable_ids=
// with base64 values) in the SaaS environment too: Conjur Cloud serves it
// under /api, and it is binary-safe, where the library's v2 batch
// (POST /secrets/values, ClientV2.BatchRetrieveSecrets, a beta API only
// allowed against SaaS) returns values as JSON strings.

// CloudAccount is the account of every Conjur Cloud tenant.
const CloudAccount = "conjur"

// Environments CONJUR_ENVIRONMENT accepts ("" = detect from the URL).
var environments = map[string]conjurapi.EnvironmentType{
	"self-hosted": conjurapi.EnvironmentSH,
	"saas":        conjurapi.EnvironmentSaaS,
	"cloud":       conjurapi.EnvironmentSaaS,
	"oss":         conjurapi.EnvironmentOSS,
}

// IsCloudURL reports whether raw is a Conjur Cloud URL, as conjur-api-go
// decides it: https and a host name ending in a Secrets Manager SaaS suffix.
func IsCloudURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" {
		return false
	}
	return conjurapi.ConjurCloudRegexp.MatchString(strings.ToLower(u.Hostname()))
}

// EffectiveAccount is the account the client uses with these settings:
// account, or CloudAccount when it is empty and every URL is Conjur
// Cloud's. The one place that rule is decided (cmd shows and checks the
// same account).
func EffectiveAccount(account string, urls []string) string {
	if account == "" && AllCloud(urls) {
		return CloudAccount
	}
	return account
}

// AllCloud reports whether urls are all Conjur Cloud URLs (and there is at
// least one): then an unset CONJUR_ACCOUNT means CloudAccount.
func AllCloud(urls []string) bool {
	for _, u := range urls {
		if !IsCloudURL(u) {
			return false
		}
	}
	return len(urls) > 0
}

func checkEnvironment(env string) error {
	if env == "" {
		return nil
	}
	if _, ok := environments[strings.ToLower(env)]; !ok {
		return fmt.Errorf("CONJUR_ENVIRONMENT %q: want saas (Conjur Cloud), self-hosted or oss, or leave it empty to detect it from the URL", env)
	}
	return nil
}

// environmentFor is the conjur-api-go environment for appliance URL u.
func (c Config) environmentFor(u string) conjurapi.EnvironmentType {
	if e, ok := environments[strings.ToLower(c.Environment)]; ok {
		return e
	}
	if IsCloudURL(u) {
		return conjurapi.EnvironmentSaaS
	}
	return conjurapi.EnvironmentSH
}

// apiConfig is the conjurapi configuration at appliance URL u that every
// client of this package starts from, each authenticator adding its own
// fields: no credential storage, the environment explicit (no probing at
// construction), the library's HTTP timeout just above the fetch timeout,
// and CONJUR_KEYCHAIN_NAMESPACE never consulted.
func (c Config) apiConfig(u string) conjurapi.Config {
	conf := conjurapi.Config{
		Account:               c.Account,
		ApplianceURL:          u,
		CredentialStorage:     conjurapi.CredentialStorageNone,
		CredentialStorageMode: conjurapi.CredentialStorageModeReadOnly,
		Environment:           c.environmentFor(u),
		HTTPTimeout:           int(c.FetchTimeout/time.Second) + 1,
	}
	conf.SetKeychainNamespaceResolved(true)
	return conf
}

// apiTelemetry is how this package's conjurapi clients name the caller.
func apiTelemetry() conjurapi.Telemetry {
	return conjurapi.NewTelemetry("conjur-swarm", "secret-driver", "", "", "")
}
