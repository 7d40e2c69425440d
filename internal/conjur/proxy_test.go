package conjur

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// connectProxy is an HTTP CONNECT proxy written for the tests: it records
// every byte the client sends through its tunnels, can demand Basic
// credentials (407 otherwise), and counts tunnels.
type connectProxy struct {
	t      *testing.T
	ln     net.Listener
	wantPA string // Proxy-Authorization it demands; "" = none

	mu        sync.Mutex
	seen      bytes.Buffer // client -> server bytes after CONNECT, all tunnels
	connects  []string     // CONNECT targets
	refused   int
	wg        sync.WaitGroup
	closeOnce sync.Once
}

func newConnectProxy(t *testing.T, wantUserPass string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{t: t, ln: ln}
	if wantUserPass != "" {
		p.wantPA = "Basic " + base64.StdEncoding.EncodeToString([]byte(wantUserPass))
	}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *connectProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *connectProxy) close() {
	p.closeOnce.Do(func() { _ = p.ln.Close() })
	p.wg.Wait()
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	var open []net.Conn
	var openMu sync.Mutex
	defer func() {
		openMu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		openMu.Unlock()
	}()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			openMu.Lock()
			for _, c := range open {
				_ = c.Close()
			}
			open = nil
			openMu.Unlock()
			return
		}
		openMu.Lock()
		open = append(open, c)
		openMu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.tunnel(c)
		}()
	}
}

func (p *connectProxy) tunnel(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	if p.wantPA != "" && req.Header.Get("Proxy-Authorization") != p.wantPA {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", req.Host)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.connects = append(p.connects, req.Host)
	p.mu.Unlock()
	_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, up) // server -> client
		_ = c.Close()
		close(done)
	}()
	_, _ = io.Copy(io.MultiWriter(up, p.recorder()), br) // client -> server, recorded
	_ = up.Close()
	<-done
}

func (p *connectProxy) recorder() io.Writer { return writerFunc(p.record) }

func (p *connectProxy) record(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen.Write(b)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// proxied is a TLS dev server, a client configured to reach it through
// proxyURL, and the client's log.
func proxied(t *testing.T, proxyURL, credFile string) (*devServer, *Client, *observer.ObservedLogs, *conjurdev.Listener) {
	t.Helper()
	srv := newDevServer(t, conjurdev.Options{})
	l := srv.listen(t, true)
	cfg := clientConfig(srv.key, l.URL)
	cfg.AllowHTTP = false
	cfg.CACertPEM = l.CAPEM
	cfg.Proxy = proxyURL
	cfg.ProxyCredentialFile = credFile
	core, logs := observer.New(zap.DebugLevel)
	c, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c, logs, l
}

func writeCred(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "proxy-credential")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProxy_tunnelSeesOnlyCiphertext: with CONJUR_SWARM_PROXY every
// request goes through a CONNECT tunnel, TLS is verified end to end, and the
// proxy sees the TLS handshake and encrypted records only: no API key,
// token, path or value.
func TestProxy_tunnelSeesOnlyCiphertext(t *testing.T) {
	const userPass = "swarm-proxy-user:proxy-pass-0123"
	p := newConnectProxy(t, userPass)
	srv, c, logs, l := proxied(t, p.url(), writeCred(t, userPass+"\n"))
	v := mustGet(t, c, varID(1))
	if string(v.Data.Reveal()) != varValue(1) {
		t.Fatalf("value %q through the proxy, want %q", v.Data.Reveal(), varValue(1))
	}
	if got := mustGet(t, c, varID(2)); string(got.Data.Reveal()) != varValue(2) {
		t.Fatalf("second value %q", got.Data.Reveal())
	}
	p.close() // wait for the tunnels' recordings
	p.mu.Lock()
	seen := append([]byte(nil), p.seen.Bytes()...)
	connects := append([]string(nil), p.connects...)
	p.mu.Unlock()
	host := strings.TrimPrefix(l.URL, "https://")
	if len(connects) == 0 || connects[0] != host {
		t.Fatalf("CONNECT targets %v, want %s", connects, host)
	}
	if len(seen) < 6 || seen[0] != 0x16 || seen[1] != 0x03 {
		t.Fatalf("the tunnel does not start with a TLS handshake record: % x", seen[:min(len(seen), 8)])
	}
	for _, plain := range []string{srv.key, varValue(1), varValue(2), "authenticate", "/secrets", "Token token", "HTTP/1.1", pluginLogin} {
		if bytes.Contains(seen, []byte(plain)) {
			t.Errorf("the proxy saw %q in clear", plain)
		}
	}
	for _, e := range logs.All() {
		line := e.Message + " " + fieldsText(e)
		if strings.Contains(line, "proxy-pass-0123") || strings.Contains(line, varValue(1)) {
			t.Fatalf("a log line carries the proxy password or a value: %s", line)
		}
	}
}

func fieldsText(e observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range e.ContextMap() {
		fmt.Fprintf(&b, "%s=%v ", k, v)
	}
	return b.String()
}

func TestProxy_failures(t *testing.T) {
	t.Run("fail/proxy-down-is-unavailable", func(t *testing.T) {
		_, c, _, _ := proxied(t, deadURL(t), "")
		_, err := c.Get(t.Context(), Ref{ID: varID(1)})
		if CodeOf(err) != errcode.Unavailable || !strings.Contains(err.Error(), "CONJUR_SWARM_PROXY") || !strings.Contains(err.Error(), "could not be used") {
			t.Fatalf("error %v (%s), want UNAVAILABLE naming the proxy", err, CodeOf(err))
		}
	})
	t.Run("fail/407-names-the-credential-file", func(t *testing.T) {
		p := newConnectProxy(t, "user:right-password")
		cred := writeCred(t, "user:wrong-password-77\n")
		_, c, logs, _ := proxied(t, p.url(), cred)
		_, err := c.Get(t.Context(), Ref{ID: varID(1)})
		if CodeOf(err) != errcode.Unavailable || !strings.Contains(err.Error(), "407") || !strings.Contains(err.Error(), "CONJUR_SWARM_PROXY_CREDENTIAL_FILE") {
			t.Fatalf("error %v (%s), want UNAVAILABLE with the 407 and the file to fix", err, CodeOf(err))
		}
		if strings.Contains(err.Error(), "wrong-password-77") {
			t.Fatalf("the error carries the proxy password: %v", err)
		}
		for _, e := range logs.All() {
			if strings.Contains(e.Message+fieldsText(e), "wrong-password-77") {
				t.Fatalf("a log line carries the proxy password: %s", e.Message)
			}
		}
		p.mu.Lock()
		refused := p.refused
		p.mu.Unlock()
		if refused == 0 {
			t.Fatal("the proxy was never asked")
		}
	})
	t.Run("fail/no-credentials-sent-without-a-file", func(t *testing.T) {
		p := newConnectProxy(t, "user:pw")
		_, c, _, _ := proxied(t, p.url(), "")
		if _, err := c.Get(t.Context(), Ref{ID: varID(1)}); CodeOf(err) != errcode.Unavailable || !strings.Contains(err.Error(), "407") {
			t.Fatalf("error %v, want UNAVAILABLE 407", err)
		}
	})
}

func TestProxy_config(t *testing.T) {
	base := clientConfig("k", "https://conjur.example.com")
	tests := []struct {
		name, proxy, cred, want string
	}{
		{"ok/host-port", "http://proxy.example.com:3128", "/etc/conjur-swarm/identity/proxy", ""},
		{"fail/userinfo-is-refused-and-hidden", "http://bob:s3cret@proxy:3128", "", "CONJUR_SWARM_PROXY_CREDENTIAL_FILE"},
		{"ok/https-proxy", "https://proxy.example.com:3128", "/etc/conjur-swarm/identity/proxy", ""},
		{"fail/socks-proxy", "socks5://proxy:1080", "", "http://HOST:PORT"},
		{"fail/no-port", "http://proxy", "", "give the port"},
		{"fail/path", "http://proxy:3128/x", "", "host and port only"},
		{"fail/file-without-proxy", "", "/etc/conjur-swarm/identity/proxy", "CONJUR_SWARM_PROXY is not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Proxy, cfg.ProxyCredentialFile = tt.proxy, tt.cred
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(cfg.String(), "s3cret") {
				t.Fatalf("the password shows: %v / %s", err, cfg)
			}
		})
	}
}
