package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/identity"
)

// The per-stack identity demo: `serve --dev` with CONJUR_SWARM_IDENTITY=per-request
// (`make run-per-stack`) seeds the embedded server with docs/examples/per-stack
// (two stacks, shop and blog, each its own Conjur host below the authn-jwt
// service's identity-path) and makes the server trust this plugin's own
// signing key: no API key and no bootstrap secret exist.
const (
	devIdentityDir    = "docs/examples/per-stack"
	devIdentityIssuer = "https://conjur-swarm.dev"
	devIdentityState  = "./run/state"
	devJWTService     = "swarm"
)

// applyDevIdentityDefaults points --dev's demo data, the state directory and
// the issuer at the per-stack demo unless a flag or setting says otherwise.
func applyDevIdentityDefaults(v *viper.Viper, cmd *cobra.Command, devDir *string) {
	if !cmd.Flags().Changed("dev-dir") {
		*devDir = devIdentityDir
		_ = cmd.Flags().Set("dev-dir", devIdentityDir)
	}
	if !cmd.Flags().Changed("identity-state-dir") && v.GetString("identity_state_dir") == "/var/lib/conjur-swarm" { // the plugin mount's default
		v.Set("identity_state_dir", devIdentityState)
	}
	if v.GetString("identity_issuer") == "" {
		v.Set("identity_issuer", devIdentityIssuer)
	}
	if v.GetString("authn_jwt_service_id") == "" {
		v.Set("authn_jwt_service_id", devJWTService)
	}
}

// serveDevIdentity configures srv's authn-jwt service to trust the key in
// id's state directory (generated there at the first start), listens, and
// returns Conjur settings with no credential.
func serveDevIdentity(srv *conjurdev.Server, id IdentitySettings) (ConjurSettings, func(), error) {
	store, err := identity.Open(id.StateDir)
	if err != nil {
		return ConjurSettings{}, nil, fmt.Errorf("--dev: the signing key's state directory %s: %w", id.StateDir, err)
	}
	jwks, err := json.Marshal(store.JWKS())
	if err != nil {
		return ConjurSettings{}, nil, err
	}
	keys, err := identity.Merge([]identity.Input{{Name: filepath.Join(id.StateDir, "jwks"), Data: jwks}})
	if err != nil {
		return ConjurSettings{}, nil, err
	}
	pk, err := json.Marshal(keys)
	if err != nil {
		return ConjurSettings{}, nil, err
	}
	vars := map[string][]byte{"public-keys": pk, "issuer": []byte(id.Issuer)}
	if id.Audience != "" {
		vars["audience"] = []byte(id.Audience)
	}
	for name, v := range vars {
		if err := srv.SetSecret("conjur/authn-jwt/"+devJWTService+"/"+name, v); err != nil {
			return ConjurSettings{}, nil, fmt.Errorf("--dev: the demo data has no authn-jwt/%s service (use %s): %w", devJWTService, devIdentityDir, err)
		}
	}
	return listenDev(srv, ConjurSettings{JWTServiceID: devJWTService})
}

func printDevIdentityNextStep(w io.Writer, prog, socket, url string) {
	fmt.Fprintf(w, `
conjur-swarm is serving on %[2]s against the embedded Conjur-compatible server at %[3]s,
reading each stack's secrets as the stack's own Conjur host (CONJUR_SWARM_IDENTITY=per-request).
In another terminal:

  %[1]s get --socket %[2]s --secret shop_db-password --secret-label com.docker.stack.namespace=shop --service shop_web --service-label com.docker.stack.namespace=shop
  %[1]s get --socket %[2]s --secret blog_db-password --secret-label com.docker.stack.namespace=blog --service blog_web --service-label com.docker.stack.namespace=blog
  %[1]s get --socket %[2]s --secret shop_loot --secret-label conjur.variable=apps/blog/db-password --service shop_web --service-label com.docker.stack.namespace=shop
  %[1]s status --socket %[2]s

The third is allowed by the demo's too-broad rule and refused by Conjur (FORBIDDEN): shop's host may not read blog's variable.
Stop with Ctrl-C.

`, prog, socket, url)
}
