package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cyberark/conjur-swarm/internal/identity"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// mappingFile is the plugin's mapping: the built-in by-label rule with
// reuse stated, under apps/.
func mappingFile(reuse bool) string {
	return fmt.Sprintf(`version: 1
within: [apps/]
rules:
  - name: by-label
    match:
      secret_labels: {conjur.variable: "*"}
    variable: "{secret_label:conjur.variable}"
    reuse: %t
`, reuse)
}

// profileDir is -profile: each plugin process writes its profiles to a
// directory of its name below it ("" = none).
var profileDir string

// startPlugin runs `conjur-swarm serve` as its own process, configured
// through the environment only, as the managed plugin is, with the
// credential in a file.
func startPlugin(ctx context.Context, name, bin string, reuse bool, extraEnv []string, cj *conjurCtl, work string) (*child, string, []string, error) {
	mapFile := filepath.Join(work, name+"-mapping.yml")
	if err := os.WriteFile(mapFile, []byte(mappingFile(reuse)), 0o644); err != nil {
		return nil, "", nil, err
	}
	sock := filepath.Join(work, name+".sock")
	settings := []string{
		"CONJUR_APPLIANCE_URL=" + cj.url,
		"CONJUR_ACCOUNT=" + cj.account,
		"CONJUR_AUTHN_LOGIN=" + pluginLogin,
		"CONJUR_SWARM_ALLOW_HTTP=true",
		"CONJUR_SWARM_CREDENTIAL_FILE=" + filepath.Join(work, "credential"),
		"CONJUR_SWARM_MAPPING_FILE=" + mapFile,
		"CONJUR_SWARM_SOCKET=" + sock,
	}
	settings = append(settings, extraEnv...)
	env, profile := settings, ""
	if profileDir != "" {
		profile = filepath.Join(profileDir, name)
		if err := os.MkdirAll(profile, 0o755); err != nil {
			return nil, "", nil, err
		}
		env = append(slices.Clip(settings), "STORM_PROFILE_DIR="+profile)
	}
	p, err := startChild(bin, work, name, []string{"serve"}, env)
	if err != nil {
		return nil, "", nil, err
	}
	p.profile = profile
	c := pluginapi.NewClient(sock, time.Second)
	err = p.waitReady(ctx, func() error {
		_, err := c.Status(ctx)
		return err
	})
	if err != nil {
		return nil, "", nil, err
	}
	return p, sock, settings, nil
}

// identityMapping is mappingFile with the per-stack identity: each Get is
// made in Conjur as its service's stack.
func identityMapping(reuse bool) string {
	return strings.Replace(mappingFile(reuse), "rules:\n", "identity: \"{service_label:com.docker.stack.namespace}\"\nrules:\n", 1)
}

// startIdentityPlugin runs a plugin in the per-stack identity mode
// (CONJUR_SWARM_IDENTITY=per-request), prefetch off like the measured
// plugin, signing with the key in work/state that the stand-in trusts: no
// login, no credential file.
func startIdentityPlugin(ctx context.Context, bin string, reuse bool, extraEnv []string, cj *conjurCtl, work string) (*child, string, error) {
	mapFile := filepath.Join(work, "per-stack-mapping.yml") // not startPlugin's NAME-mapping.yml, which it writes
	if err := os.WriteFile(mapFile, []byte(identityMapping(reuse)), 0o644); err != nil {
		return nil, "", err
	}
	env := append([]string{
		"CONJUR_SWARM_PREFETCH=false",
		"CONJUR_SWARM_IDENTITY=per-request",
		"CONJUR_SWARM_IDENTITY_ISSUER=" + jwtIssuer,
		"CONJUR_SWARM_IDENTITY_STATE_DIR=" + filepath.Join(work, "state"),
		"CONJUR_AUTHN_JWT_SERVICE_ID=" + jwtService,
	}, extraEnv...)
	// Later entries win: the identity plugin has no login and no credential.
	env = append(env, "CONJUR_AUTHN_LOGIN=", "CONJUR_SWARM_CREDENTIAL_FILE=", "CONJUR_SWARM_MAPPING_FILE="+mapFile)
	p, sock, _, err := startPlugin(ctx, "identity", bin, reuse, env, cj, work)
	return p, sock, err
}

// writeManagerJWKS makes the identity plugin's key in work/state (as its
// first start would) and writes its JWKS to work/jwks.json for the stand-in
// to trust.
func writeManagerJWKS(work string) error {
	store, err := identity.Open(filepath.Join(work, "state"))
	if err != nil {
		return err
	}
	data, err := json.Marshal(store.JWKS())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, "jwks.json"), data, 0o644)
}
