package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/identity"
)

const (
	pluginLogin = "host/swarm/conjur-plugin"
	pluginRole  = "host:swarm/conjur-plugin"
)

func variableID(i int) string { return fmt.Sprintf("apps/storm/v%03d", i) }
func variableValue(i int) string {
	return fmt.Sprintf("storm-value-%03d-0123456789abcdef", i)
}

// The per-stack identity mode's side of the stand-in: the authn-jwt service
// the identity plugin's JWTs log in through and one host per stack
// (identityStacks of them, under the identity-path swarm/stacks), each
// reading every variable through the same group as the plugin's host.
const (
	identityStacks = 20
	jwtService     = "swarm"
	jwtIssuer      = "https://storm.test"
)

func stackName(i int) string { return fmt.Sprintf("stack-%02d", i) }

// identityPolicy declares the authn-jwt service and the stacks' hosts.
func identityPolicy() string {
	var sb strings.Builder
	sb.WriteString("- !policy\n  id: conjur/authn-jwt/" + jwtService + "\n  body:\n  - !webservice\n")
	for _, v := range []string{"public-keys", "issuer", "token-app-property", "identity-path"} {
		sb.WriteString("  - !variable " + v + "\n")
	}
	sb.WriteString("  - !group stacks\n  - !permit\n    role: !group stacks\n    privilege: [read, authenticate]\n    resource: !webservice\n")
	sb.WriteString("- !policy\n  id: swarm/stacks\n  body:\n")
	for i := range identityStacks {
		fmt.Fprintf(&sb, "  - !host\n    id: %s\n    annotations:\n      authn-jwt/%s/stack: %s\n", stackName(i), jwtService, stackName(i))
	}
	for _, g := range []string{"conjur/authn-jwt/" + jwtService + "/stacks", "apps/secret-readers"} {
		sb.WriteString("- !grant\n  role: !group " + g + "\n  members:\n")
		for i := range identityStacks {
			fmt.Fprintf(&sb, "  - !host swarm/stacks/%s\n", stackName(i))
		}
	}
	return sb.String()
}

// trustManager configures authn-jwt/swarm to accept the JWTs of the
// manager whose JWKS (as `conjur-swarm jwks` prints it) is in jwksFile.
func trustManager(dev *conjurdev.Server, jwksFile string) error {
	data, err := os.ReadFile(jwksFile)
	if err != nil {
		return err
	}
	keys, err := identity.Merge([]identity.Input{{Name: jwksFile, Data: data}})
	if err != nil {
		return err
	}
	pk, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	for name, v := range map[string]string{"public-keys": string(pk), "issuer": jwtIssuer, "token-app-property": "sub", "identity-path": "swarm/stacks"} {
		if err := dev.SetSecret("conjur/authn-jwt/"+jwtService+"/"+name, []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// stormPolicy is the Conjur policy: the plugin's host, D variables, and
// execute on them through a group (the shape of docs/examples).
func stormPolicy(d int) string {
	var sb strings.Builder
	sb.WriteString("- !policy\n  id: swarm\n  body:\n  - !host\n    id: conjur-plugin\n")
	sb.WriteString("- !policy\n  id: apps\n  body:\n  - !group secret-readers\n  - &vars\n")
	for i := range d {
		fmt.Fprintf(&sb, "    - !variable %s\n", strings.TrimPrefix(variableID(i), "apps/"))
	}
	sb.WriteString("  - !permit\n    role: !group secret-readers\n    privileges: [read, execute]\n    resources: *vars\n")
	sb.WriteString("- !grant\n  role: !group apps/secret-readers\n  member: !host swarm/conjur-plugin\n")
	return sb.String() + identityPolicy()
}

// conjurInfo is what the Conjur child tells the harness (the API key goes
// to the credential file instead).
type conjurInfo struct {
	URL     string `json:"url"`
	Account string `json:"account"`
}

// serveConjur is the Conjur child process: conjurdev seeded with D
// variables on loopback HTTP, the plugin host's API key written to
// work/credential (0600), and a control socket work/control.sock on which the
// harness sets the latency and reads the request counts. It runs until
// SIGTERM.
func serveConjur(work string, d int) error {
	dev, err := conjurdev.New(conjurdev.Options{Authenticators: []string{"authn", "authn-jwt/" + jwtService}})
	if err != nil {
		return err
	}
	res, err := dev.LoadConjurPolicy(conjurdev.ModePost, "root", []byte(stormPolicy(d)))
	if err != nil {
		return fmt.Errorf("loading the storm policy: %w", err)
	}
	key, ok := res.CreatedRoles[dev.Account()+":"+pluginRole]
	if !ok {
		return fmt.Errorf("the storm policy created no %s", pluginRole)
	}
	for i := range d {
		if err := dev.SetSecret(variableID(i), []byte(variableValue(i))); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(work, "credential"), []byte(key), 0o600); err != nil {
		return err
	}
	if err := trustManager(dev, filepath.Join(work, "jwks.json")); err != nil {
		return fmt.Errorf("trusting the identity plugin's key: %w", err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	lim := &slotLimiter{h: dev}
	api := &http.Server{Handler: lim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = api.Serve(tcp) }()
	defer api.Close()
	url := "http://" + tcp.Addr().String()

	return serveControl(work, controlMux(dev, lim, url))
}

// controlMux is the stand-in's control API: its URL, latency, authentication
// cost, slots and request counts.
func controlMux(dev *conjurdev.Server, lim *slotLimiter, url string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(conjurInfo{URL: url, Account: dev.Account()})
	})
	mux.HandleFunc("POST /latency", func(w http.ResponseWriter, r *http.Request) {
		lat, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		dev.Faults().SetLatency(lat)
	})
	mux.HandleFunc("POST /authn-cost", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "d must be a duration of at least 0", http.StatusBadRequest)
			return
		}
		lim.authnCost.Store(int64(d))
	})
	mux.HandleFunc("POST /slots", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 {
			http.Error(w, "n must be a number of at least 0", http.StatusBadRequest)
			return
		}
		lim.set(n)
	})
	mux.HandleFunc("POST /reset-counts", func(http.ResponseWriter, *http.Request) { dev.ResetCounts() })
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(dev.Counts())
	})
	return mux
}

// serveControl serves mux on work/control.sock until SIGTERM.
func serveControl(work string, mux *http.ServeMux) error {
	ln, err := net.Listen("unix", filepath.Join(work, "control.sock"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// slotLimiter serves at most n requests at once (0: no limit), the others
// waiting for a slot: a model of a server with a bounded worker pool. The
// added latency is spent inside the slot, and so is authnCost, added to
// every authentication (Conjur signs access tokens with RSA: an
// authentication costs it more than a fetch).
type slotLimiter struct {
	h         http.Handler
	sem       atomic.Pointer[chan struct{}]
	authnCost atomic.Int64 // time.Duration
}

func (l *slotLimiter) set(n int) {
	if n == 0 {
		l.sem.Store(nil)
		return
	}
	sem := make(chan struct{}, n)
	l.sem.Store(&sem)
}

func (l *slotLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if sem := l.sem.Load(); sem != nil {
		select {
		case *sem <- struct{}{}:
			defer func() { <-*sem }()
		case <-r.Context().Done():
			return
		}
	}
	if d := time.Duration(l.authnCost.Load()); d > 0 && strings.HasPrefix(r.URL.Path, "/authn") {
		time.Sleep(d) // a model of the server's work, inside its slot
	}
	l.h.ServeHTTP(w, r)
}

// conjurCtl is the harness's handle on the Conjur child.
type conjurCtl struct {
	proc    *child
	hc      *http.Client
	url     string
	account string
	key     string
}

func startConjur(ctx context.Context, self, work string, d int) (*conjurCtl, error) {
	p, err := startChild(self, work, "conjur", []string{"-child", "conjur", "-work", work, "-variables", fmt.Sprint(d)}, nil)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(work, "control.sock")
	c := &conjurCtl{proc: p, hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
	var info conjurInfo
	if err := p.waitReady(ctx, func() error { return c.call(http.MethodGet, "/info", &info) }); err != nil {
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(work, "credential"))
	if err != nil {
		p.stop()
		return nil, err
	}
	c.url, c.account, c.key = info.URL, info.Account, string(key)
	return c, nil
}

func (c *conjurCtl) call(method, path string, out any) error {
	req, err := http.NewRequest(method, "http://control"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("conjur child: %s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *conjurCtl) setLatency(d time.Duration) error {
	return c.call(http.MethodPost, "/latency?d="+d.String(), nil)
}

// setAuthnCost adds d to every authentication, inside the server's slot.
func (c *conjurCtl) setAuthnCost(d time.Duration) error {
	return c.call(http.MethodPost, "/authn-cost?d="+d.String(), nil)
}

// setSlots bounds the requests the server answers at once (0: no bound).
func (c *conjurCtl) setSlots(n int) error {
	return c.call(http.MethodPost, fmt.Sprintf("/slots?n=%d", n), nil)
}

func (c *conjurCtl) resetCounts() error { return c.call(http.MethodPost, "/reset-counts", nil) }

// requests is the total of every endpoint's count, and the non-zero counts
// by endpoint ("authn=10000 secret=10000").
func (c *conjurCtl) requests() (int64, string, error) {
	var counts map[string]int64
	if err := c.call(http.MethodGet, "/counts", &counts); err != nil {
		return 0, "", err
	}
	var total int64
	var parts []string
	for k, v := range counts {
		total += v
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(parts)
	return total, strings.Join(parts, " "), nil
}

func (c *conjurCtl) close() {
	c.hc.CloseIdleConnections()
	c.proc.stop()
}
