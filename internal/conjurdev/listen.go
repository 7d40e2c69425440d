package conjurdev

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// certAuthority is the server's generated CA and its serving certificate.
type certAuthority struct {
	caPEM []byte
	cert  tls.Certificate
}

// rootCA is the dev server's certificate authority.
type rootCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func (ca *rootCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

func serialNumber() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// newRootCA makes a CA valid for ten years.
func newRootCA() (*rootCA, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: "conjur-swarm dev-server CA", Organization: []string{"conjur-swarm development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	return &rootCA{cert: caCert, key: caKey}, nil
}

// newCertAuthority makes a CA and a certificate it signs for 127.0.0.1,
// ::1, localhost, this host's name and extra (host names or IPs).
func newCertAuthority(extra ...string) (*certAuthority, error) {
	ca, err := newRootCA()
	if err != nil {
		return nil, err
	}
	return ca.serving(extra...)
}

// serving signs a fresh serving certificate for 127.0.0.1, ::1,
// localhost, this host's name and extra (host names or IPs).
func (ca *rootCA) serving(extra ...string) (*certAuthority, error) {
	now := time.Now()
	serial := serialNumber
	caCert, caKey, caDER := ca.cert, ca.key, ca.cert.Raw
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	names := append([]string(nil), extra...)
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	for _, n := range names {
		if n == "" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			if !ip.IsUnspecified() {
				leaf.IPAddresses = append(leaf.IPAddresses, ip)
			}
		} else if !slices.Contains(leaf.DNSNames, n) {
			leaf.DNSNames = append(leaf.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return &certAuthority{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert:  tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key},
	}, nil
}

// Listener is a running HTTP(S) front end of a Server.
type Listener struct {
	// URL is the base URL clients use, e.g. "https://127.0.0.1:41234", with
	// the server's path prefix ("https://127.0.0.1:41234/api").
	URL string
	// CAPEM is the PEM of the CA that signed the server certificate; nil
	// over plain HTTP.
	CAPEM []byte

	srv  *http.Server
	done chan struct{}
	err  error
	once sync.Once
}

// Listen serves s on addr ("127.0.0.1:0" picks a free port) until Close.
// With useTLS it serves HTTPS with a certificate from a CA generated once
// per Server (or kept in Options.StateDir), valid for 127.0.0.1, ::1, localhost and this host's name.
// HTTP/2 is off so that dropped-connection faults behave as on HTTP/1.1.
func (s *Server) Listen(addr string, useTLS bool) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("conjurdev: listen on %s: %w", addr, err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	l := &Listener{done: make(chan struct{})}
	l.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(s.log.Named("http").WithOptions(zap.IncreaseLevel(zap.WarnLevel))),
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	scheme := "http"
	if useTLS {
		reqHost, _, _ := net.SplitHostPort(addr)
		s.caOnce.Do(func() {
			var root *rootCA
			if root, s.caErr = s.loadOrNewCA(); s.caErr == nil {
				s.ca, s.caErr = root.serving(reqHost)
			}
		})
		if s.caErr != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("conjurdev: generate the TLS certificate: %w", s.caErr)
		}
		l.CAPEM = s.ca.caPEM
		// Client certificates are asked for, never required: authn-cert
		// verifies them against its ca-cert, every other request ignores them.
		l.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.ca.cert}, ClientAuth: tls.RequestClientCert}
		ln = tls.NewListener(ln, l.srv.TLSConfig)
		scheme = "https"
	}
	l.URL = scheme + "://" + net.JoinHostPort(host, port) + s.prefix
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.err = err
		}
	}()
	return l, nil
}

// Close stops the listener and closes open connections; it waits for the
// serving goroutine to end.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if e := l.srv.Shutdown(ctx); e != nil {
			_ = l.srv.Close()
		}
		<-l.done
		err = l.err
	})
	return err
}

// Done is closed when the listener has stopped serving.
func (l *Listener) Done() <-chan struct{} { return l.done }
