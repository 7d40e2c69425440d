package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// servePlugin serves d on a unix socket in a temporary directory and stops it
// when the test ends.
func servePlugin(t *testing.T, d *Driver) (*Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), pluginapi.SocketName)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := NewServer(d, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, sock
}

// rawPost sends a body the way Docker's plugin client does and returns the
// status and body.
func rawPost(t *testing.T, sock, path, body string) (int, string) {
	t.Helper()
	hc := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}
	req, _ := http.NewRequest(http.MethodPost, "http://plugin"+path, strings.NewReader(body))
	req.Header.Set("Accept", pluginapi.AcceptHeader)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestServerGetSecretOverUnixSocket(t *testing.T) {
	d, _ := newTestDriver(t, demoFetcher(), &fakeResolver{})
	_, sock := servePlugin(t, d)

	code, body := rawPost(t, sock, pluginapi.PathGetSecret, `{"SecretName":"db_password","SecretLabels":{"conjur.variable":"apps/demo/db-password"},"NodeID":"n1"}`)
	if code != http.StatusOK {
		t.Fatalf("status %d body %s", code, body)
	}
	var res struct {
		Value      []byte
		Err        string
		DoNotReuse bool
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if string(res.Value) != demoValue || !res.DoNotReuse || res.Err != "" {
		t.Errorf("answer %+v", res)
	}
	if strings.Contains(body, demoValue) {
		t.Errorf("value travels in clear text, want base64: %s", body)
	}

	code, body = rawPost(t, sock, pluginapi.PathGetSecret, `{"SecretName":"db_password"}`)
	if code != http.StatusInternalServerError || !strings.Contains(body, `"Err":"conjur-swarm [DENIED] secret \"db_password\"`) {
		t.Errorf("deny: status %d body %s", code, body)
	}

	code, body = rawPost(t, sock, pluginapi.PathGetSecret, `not json`)
	if code != http.StatusInternalServerError || !strings.Contains(body, "[BAD_REQUEST]") {
		t.Errorf("bad body: status %d body %s", code, body)
	}

	code, body = rawPost(t, sock, pluginapi.PathActivate, ``)
	if code != http.StatusOK || strings.TrimSpace(body) != manifest {
		t.Errorf("activate: status %d body %s", code, body)
	}

	code, body = rawPost(t, sock, "/Nope", `{}`)
	if code != http.StatusNotFound {
		t.Errorf("unknown path: status %d body %s", code, body)
	}
}

func TestServerRejectsOtherMethods(t *testing.T) {
	d, _ := newTestDriver(t, demoFetcher(), &fakeResolver{})
	_, sock := servePlugin(t, d)
	req, _ := http.NewRequest(http.MethodGet, "http://plugin"+pluginapi.PathGetSecret, nil)
	resp, err := unixHTTP(sock).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET GetSecret: status %d", resp.StatusCode)
	}
}

func TestClientGetAndStatus(t *testing.T) {
	d, _ := newTestDriver(t, demoFetcher(), &fakeResolver{})
	_, sock := servePlugin(t, d)
	c := pluginapi.NewClient(sock, 5*time.Second)
	ctx := context.Background()

	res, err := c.GetSecret(ctx, labelled("apps/demo/db-password"))
	if err != nil || string(res.Value) != demoValue {
		t.Fatalf("GetSecret: %v %v", res, err)
	}
	res, err = c.GetSecret(ctx, labelled("apps/demo/missing"))
	if err != nil || !strings.Contains(res.Err, "[NOT_FOUND]") {
		t.Fatalf("GetSecret missing: %v %v", res, err)
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Configured || st.Counters.Requests != 2 || st.Counters.Allowed != 1 || st.Counters.Errors != 1 ||
		st.Counters.ByCode["NOT_FOUND"] != 1 || len(st.Recent) != 2 || st.Recent[0].Code != "NOT_FOUND" {
		t.Errorf("status %+v", st)
	}
	if st.Mapping == nil || st.Mapping.Hash != "sha256:abc" || st.Conjur == nil || st.Conjur.LastURL != "https://conjur.test" {
		t.Errorf("status sections %+v %+v", st.Mapping, st.Conjur)
	}
	raw, _ := json.Marshal(st)
	if bytes.Contains(raw, []byte(demoValue)) {
		t.Errorf("status holds the value: %s", raw)
	}
}

func TestClientOnMissingSocket(t *testing.T) {
	c := pluginapi.NewClient(filepath.Join(t.TempDir(), "none.sock"), time.Second)
	_, err := c.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "calling the plugin at") {
		t.Fatalf("error %v", err)
	}
}

// serveBlockingFetcher serves a driver whose fetches wait on f.block (and
// signal f.entered) on a unix socket, without Shutdown on cleanup: the
// tests call it. served receives Serve's result.
func serveBlockingFetcher(t *testing.T) (f *fakeConjur, srv *Server, c *pluginapi.Client, served chan error) {
	t.Helper()
	f = demoFetcher()
	f.block = make(chan struct{})
	f.entered = make(chan struct{}, 1)
	d, _ := newTestDriver(t, f, &fakeResolver{})
	sock := filepath.Join(t.TempDir(), pluginapi.SocketName)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv = NewServer(d, zap.NewNop())
	served = make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln, time.Minute) }()
	return f, srv, pluginapi.NewClient(sock, time.Minute), served
}

// TestShutdownDrainsInFlight: a request in flight when Shutdown starts is
// answered in full; Shutdown returns only after it; new connections are
// refused afterwards.
func TestShutdownDrainsInFlight(t *testing.T) {
	f, srv, c, served := serveBlockingFetcher(t)
	answered := make(chan pluginapi.Response, 1)
	go func() {
		res, err := c.GetSecret(context.Background(), labelled("apps/demo/db-password"))
		if err != nil {
			res.Err = err.Error()
		}
		answered <- res
	}()
	<-f.entered // the request is inside the fetch

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	case res := <-answered:
		t.Fatalf("request answered before the fetch was released: %v", res)
	default:
	}
	close(f.block)
	if res := <-answered; string(res.Value) != demoValue {
		t.Fatalf("in-flight request got %v, want the value", res)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := c.Status(context.Background()); err == nil {
		t.Fatal("the socket still answers after Shutdown")
	}
}

// TestShutdownDeadline: with a request stuck past the deadline, Shutdown
// reports it, and the stuck request is cancelled rather than leaked.
func TestShutdownDeadline(t *testing.T) {
	f, srv, c, served := serveBlockingFetcher(t) // f.block is never released
	answered := make(chan error, 1)
	go func() {
		_, err := c.GetSecret(context.Background(), labelled("apps/demo/db-password"))
		answered <- err
	}()
	<-f.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has already passed
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want the context's error", err)
	}
	if err := <-answered; err == nil {
		t.Fatal("the stuck request was answered although its connection was closed")
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// A caller that sends its headers but never finishes the body must not hold
// a connection (and its goroutine) forever: the server cuts it off once the
// read timeout passes and answers or closes the connection.
func TestServerCutsOffStuckBody(t *testing.T) {
	saved := connTimeouts
	connTimeouts.read = 200 * time.Millisecond
	t.Cleanup(func() { connTimeouts = saved })
	d, _ := newTestDriver(t, demoFetcher(), &fakeResolver{})
	_, sock := servePlugin(t, d)

	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The body announces 1000 bytes and sends 10.
	if _, err := io.WriteString(conn, "POST "+pluginapi.PathGetSecret+" HTTP/1.1\r\nHost: plugin\r\nContent-Length: 1000\r\n\r\n{\"Secret\":"); err != nil {
		t.Fatal(err)
	}
	// A bound on the test only: without the server's timeout the read
	// below would wait forever.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a request with an unfinished body open")
	}
}
