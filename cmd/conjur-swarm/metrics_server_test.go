package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// The metrics endpoint listens on the host network: a client that keeps a
// connection open and idle after a scrape must be cut off, not kept forever.
func TestMetricsServerClosesIdleConnections(t *testing.T) {
	saved := metricsIdleTimeout
	metricsIdleTimeout = 100 * time.Millisecond
	t.Cleanup(func() { metricsIdleTimeout = saved })
	_, srv, err := newMetricsServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// A bound on the test only: without an idle timeout this read would
	// wait forever.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the metrics server kept an idle connection open")
	}
}

// serve answers /healthz and /readyz on the metrics listener, beside
// /metrics (issue 26 item 5): alive at once; ready only once a credential
// was handed over and Conjur answered.
func TestServeAnswersHealthOnTheMetricsListener(t *testing.T) {
	clearEnv(t)
	d := startDevConjurFor(t, "dev")
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	_ = free.Close()
	sock := filepath.Join(t.TempDir(), "conjur.sock")
	stop := startPlugin(t, map[string]string{
		"CONJUR_SWARM_SOCKET": sock, "CONJUR_SWARM_LOG_LEVEL": "error", "CONJUR_SWARM_METRICS_LISTEN": addr,
		"CONJUR_APPLIANCE_URL": d.url, "CONJUR_ACCOUNT": d.account, "CONJUR_AUTHN_LOGIN": devPluginLogin,
		"CONJUR_SSL_CERTIFICATE": string(d.ca),
	})
	defer stop()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != http.StatusOK || !strings.Contains(body, `"alive":true`) {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"ready":false`) {
		t.Fatalf("/readyz before the handoff: %d %s, want 503", code, body)
	}
	if ans, err := pluginapi.NewClient(sock, 10*time.Second).Bootstrap(context.Background(), []byte(d.handoff())); err != nil || !ans.OK {
		t.Fatalf("handoff: %v %s", err, ans.Err)
	}
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/readyz after the handoff: %d %s, want 200", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "conjur_swarm_") {
		t.Fatalf("/metrics beside the health endpoints: %d", code)
	}
}
