package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"github.com/docker/go-plugins-helpers/secrets"
)

// naiveDriver is the simple design most secret-provider plugins follow (the
// published sample plugin among them): go-plugins-helpers' secrets handler
// on a unix socket, and for every Get a fresh conjur-api-go client that
// authenticates with the API key and fetches the one variable the
// secret's conjur.variable label names. No token reuse, no coalescing, no
// batching.
//
// To be fair to it, every per-Get client shares one keep-alive HTTP
// transport, so it pays for the extra authentication request, not for new
// connections.
type naiveDriver struct {
	cfg   conjurapi.Config
	login authn.LoginPair
	hc    *http.Client
}

var _ secrets.Driver = (*naiveDriver)(nil)

func (n *naiveDriver) Get(req secrets.Request) secrets.Response {
	id := req.SecretLabels["conjur.variable"]
	if id == "" {
		return secrets.Response{Err: fmt.Sprintf("secret %q has no conjur.variable label", req.SecretName)}
	}
	c, err := conjurapi.NewClientFromKey(n.cfg, n.login)
	if err != nil {
		return secrets.Response{Err: err.Error()}
	}
	c.SetHttpClient(n.hc)
	v, err := c.RetrieveSecret(id)
	if err != nil {
		return secrets.Response{Err: err.Error()}
	}
	return secrets.Response{Value: v, DoNotReuse: true}
}

// nullDriver answers every Get from memory with the value the harness
// expects, without Conjur: the same handler and socket as the naive driver,
// so a storm against it measures the floor, what the load generator and
// the plugin protocol cost on this machine whatever the driver does.
type nullDriver struct{}

func (nullDriver) Get(req secrets.Request) secrets.Response {
	var i int
	if _, err := fmt.Sscanf(req.SecretLabels["conjur.variable"], "apps/storm/v%d", &i); err != nil {
		return secrets.Response{Err: "not a storm variable"}
	}
	return secrets.Response{Value: []byte(variableValue(i)), DoNotReuse: true}
}

// serveDriver is a driver child process ("naive" or "null"): it serves on
// work/<kind>.sock until SIGTERM.
func serveDriver(kind, work, url, account string) error {
	var drv secrets.Driver = nullDriver{}
	if kind == "naive" {
		d, err := newNaive(work, url, account)
		if err != nil {
			return err
		}
		drv = d
	}
	ln, err := net.Listen("unix", filepath.Join(work, kind+".sock"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	err = secrets.NewHandler(drv).Serve(ln)
	if ctx.Err() != nil && errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// newNaive builds the naive driver with the API key from work/credential.
func newNaive(work, url, account string) (*naiveDriver, error) {
	key, err := os.ReadFile(filepath.Join(work, "credential"))
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	d := &naiveDriver{
		cfg: conjurapi.Config{
			Account:           account,
			ApplianceURL:      url,
			CredentialStorage: conjurapi.CredentialStorageNone,
			Environment:       conjurapi.EnvironmentOSS,
		},
		login: authn.LoginPair{Login: pluginLogin, APIKey: strings.TrimSpace(string(key))},
		hc:    &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}
	return d, nil
}

// startDriver runs the naive or the null driver as its own process, like
// the plugin.
func startDriver(ctx context.Context, kind, self, work string, cj *conjurCtl) (*child, string, error) {
	p, err := startChild(self, work, kind, []string{"-child", kind, "-work", work, "-conjur-url", cj.url, "-conjur-account", cj.account}, nil)
	if err != nil {
		return nil, "", err
	}
	sock := filepath.Join(work, kind+".sock")
	err = p.waitReady(ctx, func() error {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return nil, "", err
	}
	return p, sock, nil
}
