package conjurdev

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
)

// authn-cert: a client authenticates with the certificate it presents in
// the TLS handshake. Conjur Open Source 1.24 has no authn-cert (it comes
// with Secrets Manager Self-Hosted), so the dev server follows what
// conjur-api-go v0.15.7 sends (CertAuthenticateRequest) and its own
// integration test expects (authn_cert_test.go): a webservice
// conjur/authn-cert/<id> with a variable ca-cert (PEM, the CA the client
// certificates must chain to), and either
//   - request mode: the host in the URL, pinned by its annotation
//     authn-cert/cn (or authn-cert/<id>/cn) to the certificate's CN, or
//   - SPIFFE mode (variable host-mode = spiffe, with trust-domain and
//     identity-path): no host in the URL; the host is
//     host/<identity-path>/<path> of the certificate's URI SAN
//     spiffe://<trust-domain>/<path>.
// The generic steps (enabled, role, webservice, authenticate) come first,
// as for every Conjur authenticator.

func (s *Server) authenticateCert(w http.ResponseWriter, r *http.Request) {
	req := authnRequest{authenticator: "authn-cert", service: r.PathValue("service"), account: r.PathValue("account"), login: r.PathValue("id")}
	var chain []*x509.Certificate
	if r.TLS != nil {
		chain = r.TLS.PeerCertificates
	}
	s.mu.RLock()
	err := s.authenticateCertLocked(&req, chain)
	s.mu.RUnlock()
	s.answerAuthn(w, r, req.name(), req.login, err)
}

func errCert(why string) *authnError {
	return authnErr("Errors::Authentication::InvalidCredentials", "CONJ00002E", "Invalid credentials (%s)", why)
}

func (s *Server) authenticateCertLocked(req *authnRequest, chain []*x509.Certificate) error {
	mode, _, err := s.serviceVar(*req, "host-mode")
	if err != nil {
		return err
	}
	spiffe := strings.TrimSpace(mode) == "spiffe"
	if len(chain) == 0 {
		return errCert("no client certificate in the TLS handshake: connect over HTTPS with the certificate and key")
	}
	if spiffe && req.login == "" {
		login, err := s.spiffeLogin(*req, chain[0])
		if err != nil {
			return err
		}
		req.login = login
	}
	if req.login == "" {
		return errCert("no host in the URL: POST /authn-cert/<id>/<account>/<host>/authenticate")
	}
	return s.authenticateLocked(*req, func(role *resource) error {
		if err := s.verifyClientChain(*req, chain); err != nil {
			return err
		}
		if spiffe {
			return nil
		}
		constraints := []func([]string) error{requiredConstraint([]string{"cn"}), permittedConstraint([]string{"cn"})}
		return checkAnnotations(annotationRestrictions(role, "authn-cert", req.service), constraints, func(r restriction) (bool, error) {
			return chain[0].Subject.CommonName == r.value, nil
		})
	})
}

// verifyClientChain checks the presented chain against the service's
// ca-cert: a certificate for client authentication, valid now.
func (s *Server) verifyClientChain(req authnRequest, chain []*x509.Certificate) error {
	caPEM, err := s.requiredServiceVar(req, "ca-cert")
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	rest := []byte(caPEM)
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			roots.AddCert(c)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err = chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: s.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return errCert("the client certificate does not verify against conjur/" + req.name() + "/ca-cert: " + err.Error())
	}
	return nil
}

// spiffeLogin is the host of SPIFFE mode: the certificate's spiffe:// URI
// in the trust domain, under identity-path.
func (s *Server) spiffeLogin(req authnRequest, cert *x509.Certificate) (string, error) {
	domain, err := s.requiredServiceVar(req, "trust-domain")
	if err != nil {
		return "", err
	}
	path, _, err := s.serviceVar(req, "identity-path")
	if err != nil {
		return "", err
	}
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" && u.Host == strings.TrimSpace(domain) && strings.Trim(u.Path, "/") != "" {
			return rubyFileJoin("host", strings.TrimSpace(path), strings.Trim(u.Path, "/")), nil
		}
	}
	return "", errCert("the certificate has no URI SAN spiffe://" + domain + "/<workload>")
}
