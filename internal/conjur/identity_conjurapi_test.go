package conjur

import (
	"testing"

	"github.com/cyberark/conjur-api-go/conjurapi"
)

// A JWT the plugin's signer (internal/identity) signs authenticates through
// conjur-api-go's own NewClientFromJwt against the dev-server, and that
// client reads the identity's variable: the official client agrees with
// the plugin's JWTs, not only this package's use of it.
func TestPerIdentity_signedJWTAuthenticatesThroughNewClientFromJwt(t *testing.T) {
	srv := newIdentityServer(t)
	jwt, _, err := srv.signer.Sign(*as("shop", "").Workload)
	if err != nil {
		t.Fatal(err)
	}
	cfg := conjurapi.Config{Account: "dev", ApplianceURL: srv.url, AuthnType: "jwt", ServiceID: jwtService,
		JWTContent: jwt.Reveal(), CredentialStorage: conjurapi.CredentialStorageNone, Environment: conjurapi.EnvironmentSH}
	cfg.SetKeychainNamespaceResolved(true)
	c, err := conjurapi.NewClientFromJwt(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.RetrieveSecret("dev:variable:" + stackVar("shop", 1))
	if err != nil || string(data) != stackValue("shop", 1) {
		t.Fatalf("conjurapi with the plugin's JWT: %q, %v", data, err)
	}
	if _, err := c.RetrieveSecret("dev:variable:" + stackVar("blog", 1)); err == nil {
		t.Fatal("conjurapi with shop's JWT read blog's variable")
	}
	var roles []string
	for _, r := range srv.Requests() {
		if len(r.Variables) > 0 {
			roles = append(roles, r.Role)
		}
	}
	if len(roles) != 2 || roles[0] != "dev:host:swarm/stacks/shop" || roles[1] != roles[0] {
		t.Fatalf("the reads were made as %v, want dev:host:swarm/stacks/shop twice", roles)
	}
}
