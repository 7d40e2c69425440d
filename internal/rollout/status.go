package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"go.uber.org/zap"
)

// Status is the agent's state as `rollout-agent status` shows it. It holds
// variable ids and versions, never a value.
type Status struct {
	Started  time.Time       `json:"started"`
	DryRun   bool            `json:"dry_run"`
	Interval string          `json:"interval"`
	MinGap   string          `json:"min_gap"`
	LastPass time.Time       `json:"last_pass"`
	Primed   bool            `json:"primed"` // a pass has recorded the versions
	Error    *Problem        `json:"error,omitempty"`
	Services []ServiceStatus `json:"services"`
	Problems []Problem       `json:"problems"` // each logged once (secrets not watched, ...)
}

// ServiceStatus is one watched service.
type ServiceStatus struct {
	Name        string           `json:"name"`
	ID          string           `json:"id"`
	Variables   []VariableStatus `json:"variables"`
	Pending     string           `json:"pending,omitempty"` // a due rollout and why it waits
	LastRollout *Rollout         `json:"last_rollout,omitempty"`
}

// VariableStatus is one variable a watched service reads.
type VariableStatus struct {
	ID      string   `json:"id"`
	Secrets []string `json:"secrets"`           // the service's secrets that resolve to it
	Version int      `json:"version,omitempty"` // current in Conjur (0 = not visible)
	Rolled  int      `json:"rolled,omitempty"`  // the version the service's tasks were started with, as far as the agent knows
}

// Status returns a snapshot of the agent's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		Started:  a.started,
		DryRun:   a.opts.DryRun,
		Interval: a.opts.Interval.String(),
		MinGap:   a.opts.MinGap.String(),
		LastPass: a.lastPass,
		Primed:   a.primed,
		Services: []ServiceStatus{},
		Problems: []Problem{},
	}
	if a.passErr != nil {
		p := *a.passErr
		st.Error = &p
	}
	for _, s := range a.services {
		ss := ServiceStatus{Name: s.name, ID: s.id, Pending: s.pending, Variables: []VariableStatus{}}
		if s.last != nil {
			r := *s.last
			ss.LastRollout = &r
		}
		vars := map[string]*VariableStatus{}
		for _, u := range s.uses {
			for _, v := range u.Watched() {
				vs := vars[v]
				if vs == nil {
					vs = &VariableStatus{ID: v, Version: s.current[v], Rolled: s.rolled[v]}
					vars[v] = vs
				}
				vs.Secrets = append(vs.Secrets, u.Secret.Name)
			}
		}
		for _, vs := range vars {
			ss.Variables = append(ss.Variables, *vs)
		}
		sort.Slice(ss.Variables, func(i, j int) bool { return ss.Variables[i].ID < ss.Variables[j].ID })
		st.Services = append(st.Services, ss)
	}
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	for _, p := range a.notes {
		st.Problems = append(st.Problems, p)
	}
	sort.Slice(st.Problems, func(i, j int) bool { return st.Problems[i].Message < st.Problems[j].Message })
	return st
}

// StatusPath is the HTTP path of the status on the agent's status socket.
const StatusPath = "/status"

// ServeStatus answers GET /status with the agent's Status as JSON on ln
// until ctx is done.
func (a *Agent) ServeStatus(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(a.log.Named("status"))}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = srv.Close()
		case <-done:
		}
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("rollout-agent status socket: %w", err)
	}
	return ctx.Err()
}

// ListenStatus listens on the unix socket path, replacing a stale socket
// file a previous run left, readable by root only.
func ListenStatus(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("rollout-agent status socket %s: %w; give a writable path with --status-socket", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("rollout-agent status socket %s: %w", path, err)
	}
	return ln, nil
}

// FetchStatus asks the agent listening on the unix socket path for its
// status.
func FetchStatus(ctx context.Context, path string) (Status, error) {
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	defer cl.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://rollout-agent"+StatusPath, nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("no rollout agent answers on %s: %w; run this inside the agent's container (docker exec)", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("rollout agent on %s answered %s", path, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("rollout agent on %s: reading its status: %w", path, err)
	}
	return st, nil
}
