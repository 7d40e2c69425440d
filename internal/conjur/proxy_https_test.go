package conjur

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// testCA is a CA and a server certificate it signed for 127.0.0.1.
type testCA struct {
	pem  []byte
	cert tls.Certificate
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	return newTestCAFor(t, nil, []net.IP{net.ParseIP("127.0.0.1")})
}

// newTestCAFor is a CA and a server certificate for names and ips.
func newTestCAFor(t *testing.T, names []string, ips []net.IP) testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "proxy test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "proxy"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		DNSNames: names, IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
}

// tlsConnectProxy is connectProxy behind TLS (an https:// proxy).
func tlsConnectProxy(t *testing.T, wantUserPass string, ca testCA) *connectProxy {
	t.Helper()
	p := newConnectProxy(t, wantUserPass)
	p.close() // stop its plain listener; serve the same tunnels over TLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	q := &connectProxy{t: t, ln: tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{ca.cert}, MinVersion: tls.VersionTLS12}), wantPA: p.wantPA}
	q.wg.Add(1)
	go q.serve()
	t.Cleanup(q.close)
	return q
}

// proxiedWith is proxied with the proxy's CA trusted beside Conjur's.
func proxiedWith(t *testing.T, proxyURL, credFile string, extraCA []byte) (*devServer, *Client, *observer.ObservedLogs) {
	t.Helper()
	srv := newDevServer(t, conjurdev.Options{})
	l := srv.listen(t, true)
	cfg := clientConfig(srv.key, l.URL)
	cfg.AllowHTTP = false
	cfg.CACertPEM = append(append([]byte(nil), l.CAPEM...), extraCA...)
	cfg.Proxy = proxyURL
	cfg.ProxyCredentialFile = credFile
	core, logs := observer.New(zap.DebugLevel)
	c, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c, logs
}

// TestProxy_https: an https:// proxy is reached over TLS verified against
// the CA the plugin trusts; the proxy credential travels inside that TLS,
// and Conjur's own TLS runs end to end inside the tunnel. A proxy whose
// certificate no trusted CA signed is not used: the Get fails UNAVAILABLE
// naming the proxy, and the credential never left.
func TestProxy_https(t *testing.T) {
	ca := newTestCA(t)
	const userPass = "swarm-proxy-user:proxy-pass-https"
	t.Run("ok/verified-tls-to-the-proxy", func(t *testing.T) {
		p := tlsConnectProxy(t, userPass, ca)
		_, c, logs := proxiedWith(t, "https://"+p.ln.Addr().String(), writeCred(t, userPass+"\n"), ca.pem)
		if v := mustGet(t, c, varID(1)); string(v.Data.Reveal()) != varValue(1) {
			t.Fatalf("value %q through the https proxy", v.Data.Reveal())
		}
		p.close()
		p.mu.Lock()
		n := len(p.connects)
		p.mu.Unlock()
		if n == 0 {
			t.Fatal("the https proxy saw no CONNECT")
		}
		if got := logs.FilterMessageSnippet("in clear").Len(); got != 0 {
			t.Errorf("an https proxy got the clear-text warning")
		}
	})
	t.Run("fail/untrusted-proxy-certificate", func(t *testing.T) {
		p := tlsConnectProxy(t, userPass, ca)
		_, c, _ := proxiedWith(t, "https://"+p.ln.Addr().String(), writeCred(t, userPass+"\n"), nil)
		_, err := c.Get(t.Context(), Ref{ID: varID(1)})
		if CodeOf(err) != errcode.Unavailable || !strings.Contains(err.Error(), "CONJUR_SWARM_PROXY") || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error %v (%s), want UNAVAILABLE naming the proxy and its certificate", err, CodeOf(err))
		}
		p.close()
		p.mu.Lock()
		n := len(p.connects) + p.refused
		p.mu.Unlock()
		if n != 0 {
			t.Fatalf("the untrusted proxy received %d CONNECTs", n)
		}
	})
}

// TestProxy_warnsWhenTheCredentialGoesInClear: a proxy credential sent to
// an http:// proxy travels as Basic in clear text: New warns once, naming
// the fix; without a credential file there is nothing to warn about.
func TestProxy_warnsWhenTheCredentialGoesInClear(t *testing.T) {
	p := newConnectProxy(t, "")
	_, _, logs, _ := proxied(t, p.url(), writeCred(t, "user:pw-in-clear\n"))
	warned := logs.FilterMessageSnippet("in clear").All()
	if len(warned) != 1 || warned[0].Level != zap.WarnLevel || !strings.Contains(warned[0].Message, "https://") {
		t.Fatalf("warnings %v, want one saying to use an https:// proxy", warned)
	}
	_, _, quiet, _ := proxied(t, p.url(), "")
	if n := quiet.FilterMessageSnippet("in clear").Len(); n != 0 {
		t.Fatalf("%d clear-text warnings without a proxy credential", n)
	}
}

// TestProxy_answerIsBounded: a proxy that answers CONNECT with endless
// headers is cut at the header bound; the Get fails UNAVAILABLE naming the
// proxy.
func TestProxy_answerIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = http1ReadRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n")
			line := []byte("X-Filler: " + strings.Repeat("y", 1000) + "\r\n")
			for {
				n, err := c.Write(line)
				written.Add(int64(n))
				if err != nil {
					break
				}
			}
			_ = c.Close()
		}
	}()
	_, c, _, _ := proxied(t, "http://"+ln.Addr().String(), "")
	_, getErr := c.Get(t.Context(), Ref{ID: varID(1)})
	c.Close()
	_ = ln.Close()
	<-done
	if CodeOf(getErr) != errcode.Unavailable || !strings.Contains(getErr.Error(), "CONJUR_SWARM_PROXY") {
		t.Fatalf("error %v (%s), want UNAVAILABLE naming the proxy", getErr, CodeOf(getErr))
	}
	t.Logf("proxy wrote %d bytes", written.Load())
	if n := written.Load(); n > maxHeaderBytes+6<<20 { // buffers measured at about 1.7 MB; net/http's default bound (10 MiB) would show
		t.Fatalf("the proxy wrote %d bytes of headers before the client stopped reading", n)
	}
}

// http1ReadRequest reads one request head from c.
func http1ReadRequest(c net.Conn) (string, error) {
	br := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			return head.String(), err
		}
	}
}

// TestProxy_statusLineIsEscaped: the reason phrase of a proxy's refusal
// reaches Err escaped.
func TestProxy_statusLineIsEscaped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = http1ReadRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 403 \x1b[2J\u009b31m\u202edenied\r\nContent-Length: 0\r\n\r\n")
			_ = c.Close()
		}
	}()
	_, c, _, _ := proxied(t, "http://"+ln.Addr().String(), "")
	_, getErr := c.Get(t.Context(), Ref{ID: varID(1)})
	c.Close()
	_ = ln.Close()
	<-done
	if CodeOf(getErr) != errcode.Unavailable || !strings.Contains(getErr.Error(), "refused to connect") {
		t.Fatalf("error %v (%s), want UNAVAILABLE: the proxy refused", getErr, CodeOf(getErr))
	}
	assertClean(t, "Err", getErr.Error())
	assertClean(t, "%+v", fmt.Sprintf("%+v", getErr))
}
