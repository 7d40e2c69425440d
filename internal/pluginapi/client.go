package pluginapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// AcceptHeader is the media type Docker's plugin client asks for.
const AcceptHeader = "application/vnd.docker.plugins.v1.2+json"

// Paths served on the plugin socket.
const (
	PathGetSecret = "/SecretProvider.GetSecret"
	PathStatus    = "/ConjurSwarm.Status"
	PathBootstrap = "/ConjurSwarm.Bootstrap"
	PathActivate  = "/Plugin.Activate"
)

// maxAnswerBytes bounds what the client reads back (a value is < 500 KiB,
// base64 makes it 4/3 larger; status is far smaller).
const maxAnswerBytes = 2 << 20

// Client calls a running plugin over its unix socket the way Docker does:
// POST, Accept: application/vnd.docker.plugins.v1.2+json, a JSON body and no
// Content-Type. The get, status and bootstrap-agent commands use it.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a Client for the plugin socket at path. Each call is
// bounded by timeout.
func NewClient(path string, timeout time.Duration) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// Socket is the socket path the client calls.
func (c *Client) Socket() string { return c.socket }

// GetSecret sends a GetSecret request. A plugin failure comes back in
// Response.Err (whatever the HTTP status); the error is for transport and
// protocol failures only.
func (c *Client) GetSecret(ctx context.Context, req Request) (Response, error) {
	var res Response
	_, err := c.call(ctx, PathGetSecret, req, &res)
	return res, err
}

// Status asks the plugin for its status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	code, err := c.call(ctx, PathStatus, struct{}{}, &st)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("plugin at %s answered %s to %s", c.socket, http.StatusText(code), PathStatus)
	}
	return st, err
}

// Bootstrap hands a credential (its JSON) to the plugin. A refusal comes back
// in BootstrapAnswer.Err.
func (c *Client) Bootstrap(ctx context.Context, credential []byte) (BootstrapAnswer, error) {
	var ans BootstrapAnswer
	// The credential goes out as it is: re-encoding it could echo part of
	// it in an error.
	code, err := c.post(ctx, PathBootstrap, credential, &ans)
	if err == nil && code != http.StatusOK && ans.Err == "" {
		err = fmt.Errorf("plugin at %s answered %s to %s without a reason", c.socket, http.StatusText(code), PathBootstrap)
	}
	return ans, err
}

func (c *Client) call(ctx context.Context, path string, in, out any) (int, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return 0, fmt.Errorf("encoding the %s request: %w", path, err)
	}
	return c.post(ctx, path, body, out)
}

func (c *Client) post(ctx context.Context, path string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin"+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", AcceptHeader)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("calling the plugin at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the plugin's answer to %s: %w", path, err)
	}
	if len(data) > maxAnswerBytes {
		return resp.StatusCode, fmt.Errorf("the plugin's answer to %s is larger than %d bytes", path, maxAnswerBytes)
	}
	if err := json.Unmarshal(data, out); err != nil {
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, fmt.Errorf("plugin at %s answered %s to %s", c.socket, resp.Status, path)
		}
		return resp.StatusCode, errors.New("the plugin's answer to " + path + " is not JSON of the expected shape")
	}
	return resp.StatusCode, nil
}
