package main

import (
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// startDevConjur starts the embedded Conjur-compatible server over TLS on a
// free loopback port, seeded with dir's demo policy and values, and returns
// the Conjur settings that point the plugin at it with the demo host's API
// key; in the per-request identity mode (id), with no credential at all:
// the server trusts the key in the plugin's state directory instead.
func startDevConjur(dir string, id IdentitySettings, log *zap.Logger) (ConjurSettings, func(), error) {
	srv, err := conjurdev.New(conjurdev.Options{Logger: log, Authenticators: []string{"authn", "authn-jwt/" + devJWTService}})
	if err != nil {
		return ConjurSettings{}, nil, err
	}
	res, err := srv.LoadDemo(dir)
	if err != nil {
		return ConjurSettings{}, nil, fmt.Errorf("--dev needs the demo data (run it from the repository root or give --dev-dir): %w", err)
	}
	if id.Mode == identityPerRequest {
		return serveDevIdentity(srv, id)
	}
	key, ok := res.CreatedRoles[srv.Account()+":"+devPluginRole]
	if !ok {
		k, err := srv.APIKey(devPluginRole)
		if err != nil {
			return ConjurSettings{}, nil, fmt.Errorf("--dev: the demo policy in %s defines no %s: %w", dir, devPluginRole, err)
		}
		key = redact.String(k)
	}
	return listenDev(srv, ConjurSettings{Login: devPluginLogin, APIKey: key})
}

// listenDev starts srv's TLS listener on loopback and completes s with its
// URL, account and CA; the func closes the listener.
func listenDev(srv *conjurdev.Server, s ConjurSettings) (ConjurSettings, func(), error) {
	l, err := srv.Listen("127.0.0.1:0", true)
	if err != nil {
		return ConjurSettings{}, nil, err
	}
	s.ApplianceURLs, s.Account, s.SSLCertificate = []string{l.URL}, srv.Account(), redact.String(l.CAPEM)
	return s, func() { _ = l.Close() }, nil
}

func printDevNextStep(w io.Writer, prog, socket, url string) {
	fmt.Fprintf(w, `
conjur-swarm is serving on %[2]s against the embedded Conjur-compatible server at %[3]s.
In another terminal:

  %[1]s get --socket %[2]s --secret db_password --secret-label conjur.variable=apps/demo/db-password --service demo_web --service-label com.docker.stack.namespace=demo
  %[1]s get --socket %[2]s --secret demo_env --secret-label conjur.bundle=demo-env --service demo_web --service-label com.docker.stack.namespace=demo
  %[1]s status --socket %[2]s

Stop with Ctrl-C.

`, prog, socket, url)
}
