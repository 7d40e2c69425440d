// Package swarmapi is a small client of the Docker Engine API (version
// 1.41) over the engine's unix socket: the few swarm calls the rollout agent
// and `conjur-swarm services-using` need (list services and secrets, force a
// rolling update of one service), and no more. It is written here rather
// than taken from github.com/docker/docker/client to keep the agent's binary
// and its dependency tree small, and because a forced update must send the
// service's spec back unchanged but for one counter, which a typed spec
// from another engine version would not guarantee.
package swarmapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// APIVersion is the Engine API version every request names. Engines from
// 20.10 on serve it.
const APIVersion = "1.41"

// DefaultSocket is where the Docker Engine listens on a Linux host.
const DefaultSocket = "/var/run/docker.sock"

// maxBody bounds a response body read into memory.
const maxBody = 64 << 20

// Client talks to one Docker Engine over its unix socket. It is safe for
// concurrent use.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client of the engine listening on socket ("" =
// DefaultSocket). It does not connect.
func New(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Socket returns the socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// UpdateState is a service's UpdateStatus.State ("" when the service was
// never updated).
type UpdateState string

// The states a service update goes through (Engine API UpdateStatus.State).
const (
	UpdateNone              UpdateState = ""
	UpdateUpdating          UpdateState = "updating"
	UpdatePaused            UpdateState = "paused"
	UpdateCompleted         UpdateState = "completed"
	UpdateRollbackStarted   UpdateState = "rollback_started"
	UpdateRollbackPaused    UpdateState = "rollback_paused"
	UpdateRollbackCompleted UpdateState = "rollback_completed"
)

// InProgress reports whether an update or a rollback is rolling tasks now.
func (s UpdateState) InProgress() bool {
	return s == UpdateUpdating || s == UpdateRollbackStarted
}

// Paused reports whether an update or rollback stopped on failures and
// waits for the operator.
func (s UpdateState) Paused() bool { return s == UpdatePaused || s == UpdateRollbackPaused }

// Service is what the callers need of one swarm service.
type Service struct {
	ID          string
	Version     uint64 // Version.Index: an update must name it
	Name        string
	Labels      map[string]string // the service's (deploy) labels
	Image       string
	Secrets     []SecretRef
	ForceUpdate uint64 // TaskTemplate.ForceUpdate
	Update      UpdateStatus
}

// UpdateStatus is the service's last update.
type UpdateStatus struct {
	State       UpdateState
	StartedAt   time.Time
	CompletedAt time.Time
	Message     string
}

// SecretRef is one secret a service's tasks receive.
type SecretRef struct {
	SecretID   string
	SecretName string
	Target     string // the file name under /run/secrets
}

// Secret is a swarm secret's metadata.
type Secret struct {
	ID     string
	Name   string
	Labels map[string]string
	Driver string // "" for a secret whose value swarm holds
}

// Error is an error answer of the engine.
type Error struct {
	Op      string // e.g. "GET /services"
	Status  int
	Message string // the engine's message, e.g. "update out of sequence"
}

func (e *Error) Error() string {
	return fmt.Sprintf("docker engine: %s: %d %s", e.Op, e.Status, e.Message)
}

// ErrNotFound is matched (errors.Is) by an Error with status 404.
var ErrNotFound = errors.New("not found")

// Is lets errors.Is(err, ErrNotFound) hold for a 404.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Services lists every service of the swarm.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	var raw []serviceJSON
	if err := c.do(ctx, http.MethodGet, "/services", nil, nil, &raw); err != nil {
		return nil, err
	}
	out := make([]Service, len(raw))
	for i, s := range raw {
		out[i] = s.service()
	}
	return out, nil
}

// Service inspects one service by ID or name.
func (c *Client) Service(ctx context.Context, id string) (Service, error) {
	var raw serviceJSON
	if err := c.do(ctx, http.MethodGet, "/services/"+url.PathEscape(id), nil, nil, &raw); err != nil {
		return Service{}, err
	}
	return raw.service(), nil
}

// Secrets lists every secret of the swarm (metadata only: the engine never
// returns values).
func (c *Client) Secrets(ctx context.Context) ([]Secret, error) {
	var raw []secretJSON
	if err := c.do(ctx, http.MethodGet, "/secrets", nil, nil, &raw); err != nil {
		return nil, err
	}
	out := make([]Secret, len(raw))
	for i, s := range raw {
		out[i] = Secret{ID: s.ID, Name: s.Spec.Name, Labels: s.Spec.Labels}
		if s.Spec.Driver != nil {
			out[i].Driver = s.Spec.Driver.Name
		}
	}
	return out, nil
}

// ForceUpdate starts a rolling update of the service that replaces every
// task, as `docker service update --force` does: the service's spec is sent
// back unchanged except TaskTemplate.ForceUpdate, incremented, so the
// service's own update_config (parallelism, delay, order, failure action)
// governs the rollout. version is the Version.Index the caller decided on;
// when the service has changed since, nothing is sent and an *Error with
// status 409 is returned. It returns the engine's warnings.
func (c *Client) ForceUpdate(ctx context.Context, id string, version uint64) ([]string, error) {
	path := "/services/" + url.PathEscape(id)
	var cur struct {
		ID      string
		Version struct{ Index uint64 }
		Spec    map[string]json.RawMessage
	}
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &cur); err != nil {
		return nil, err
	}
	if cur.Version.Index != version {
		return nil, &Error{Op: "POST " + path + "/update", Status: http.StatusConflict,
			Message: fmt.Sprintf("the service changed since it was read (version %d, now %d)", version, cur.Version.Index)}
	}
	spec, err := bumpForceUpdate(cur.Spec)
	if err != nil {
		return nil, fmt.Errorf("docker engine: service %s: %w", id, err)
	}
	q := url.Values{"version": {strconv.FormatUint(version, 10)}}
	var resp struct{ Warnings []string }
	if err := c.do(ctx, http.MethodPost, path+"/update", q, spec, &resp); err != nil {
		return nil, err
	}
	return resp.Warnings, nil
}

// bumpForceUpdate returns spec as JSON with TaskTemplate.ForceUpdate
// incremented and every other field as the engine sent it.
func bumpForceUpdate(spec map[string]json.RawMessage) ([]byte, error) {
	if spec == nil {
		return nil, errors.New("the engine sent no Spec")
	}
	tt := map[string]json.RawMessage{}
	if raw, ok := spec["TaskTemplate"]; ok {
		if err := json.Unmarshal(raw, &tt); err != nil {
			return nil, fmt.Errorf("reading Spec.TaskTemplate: %w", err)
		}
	}
	var n uint64
	if raw, ok := tt["ForceUpdate"]; ok {
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("reading Spec.TaskTemplate.ForceUpdate: %w", err)
		}
	}
	tt["ForceUpdate"] = json.RawMessage(strconv.FormatUint(n+1, 10))
	b, err := json.Marshal(tt)
	if err != nil {
		return nil, err
	}
	spec["TaskTemplate"] = b
	return json.Marshal(spec)
}

// do sends one request and decodes a 2xx answer's JSON into out.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	op := method + " " + path
	u := "http://docker/v" + APIVersion + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("docker engine: %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("docker engine at %s: %s: %w; run this on a swarm manager with access to the Docker socket (in a container: --mount type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock)", c.socket, op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("docker engine: %s: reading the answer: %w", op, err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("docker engine: %s: the answer is over %d bytes", op, maxBody)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Message string }
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			msg = e.Message
		}
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		return &Error{Op: op, Status: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("docker engine: %s: the answer is not the expected JSON: %w", op, err)
	}
	return nil
}

// The engine's JSON, as far as it is read.
type serviceJSON struct {
	ID      string
	Version struct{ Index uint64 }
	Spec    struct {
		Name         string
		Labels       map[string]string
		TaskTemplate struct {
			ContainerSpec *struct {
				Image   string
				Secrets []struct {
					File *struct {
						Name string
					}
					SecretID   string
					SecretName string
				}
			}
			ForceUpdate uint64
		}
	}
	UpdateStatus *struct {
		State       string
		StartedAt   time.Time
		CompletedAt time.Time
		Message     string
	}
}

func (s serviceJSON) service() Service {
	out := Service{
		ID:          s.ID,
		Version:     s.Version.Index,
		Name:        s.Spec.Name,
		Labels:      s.Spec.Labels,
		ForceUpdate: s.Spec.TaskTemplate.ForceUpdate,
	}
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		out.Image = cs.Image
		for _, sec := range cs.Secrets {
			ref := SecretRef{SecretID: sec.SecretID, SecretName: sec.SecretName}
			if sec.File != nil {
				ref.Target = sec.File.Name
			}
			out.Secrets = append(out.Secrets, ref)
		}
	}
	if u := s.UpdateStatus; u != nil {
		out.Update = UpdateStatus{State: UpdateState(u.State), StartedAt: u.StartedAt, CompletedAt: u.CompletedAt, Message: u.Message}
	}
	return out
}

type secretJSON struct {
	ID   string
	Spec struct {
		Name   string
		Labels map[string]string
		Driver *struct {
			Name string
		}
	}
}

// NormalizeDriver returns a secret driver (plugin) name in the one form the
// engine resolves it to, so that names written differently compare equal:
// "cyberark/conjur", "cyberark/conjur:latest" and
// "docker.io/cyberark/conjur:latest" are the same plugin.
func NormalizeDriver(name string) string {
	n := strings.TrimSpace(name)
	for _, p := range []string{"docker.io/", "index.docker.io/"} {
		n = strings.TrimPrefix(n, p)
	}
	n = strings.TrimPrefix(n, "library/")
	if n == "" || strings.Contains(n, "@") {
		return n
	}
	if !strings.Contains(n[strings.LastIndex(n, "/")+1:], ":") {
		n += ":latest"
	}
	return n
}
