package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/conjur"
)

// SocketName is the plugin's socket file name (config.json interface.socket).
const SocketName = "conjur.sock"

// AgentOptions configure the bootstrap agent.
type AgentOptions struct {
	// SecretFile holds the credential JSON (a swarm secret, e.g.
	// /run/secrets/conjur-bootstrap). It is re-read on every pass.
	SecretFile string
	// PluginsDir is the host's /run/docker/plugins as mounted into the agent.
	PluginsDir string
	// Interval between passes (default 10s).
	Interval time.Duration
	// CallTimeout bounds each call to a plugin (default 25s: a handoff
	// authenticates to Conjur first).
	CallTimeout time.Duration
	// MaxBackoff caps the wait before retrying a plugin that refused the
	// credential (default 5m), so a wrong credential does not hammer Conjur.
	MaxBackoff time.Duration
	Logger     *zap.Logger
}

// Agent hands the bootstrap credential to every conjur-swarm plugin socket
// it finds, and again whenever a plugin reports no credential or another
// one. It never logs the credential, only its fingerprint.
type Agent struct {
	opts     AgentOptions
	log      *zap.Logger
	now      func() time.Time
	state    map[string]*socketState // by socket path
	last     string                  // the last "nothing to do" warning, to log it once
	problems map[string]string       // by socket path: the last problem logged for it
}

type socketState struct {
	fingerprint string    // the fingerprint last refused
	retryAt     time.Time // do not offer that fingerprint again before this
	backoff     time.Duration
}

// NewAgent checks the options and returns an Agent.
func NewAgent(opts AgentOptions) (*Agent, error) {
	var errs []error
	if opts.SecretFile == "" {
		errs = append(errs, errors.New("bootstrap-agent: the credential file path is empty (--secret-file)"))
	}
	if opts.PluginsDir == "" {
		errs = append(errs, errors.New("bootstrap-agent: the plugins directory is empty (--plugins-dir)"))
	}
	if opts.Interval < 0 || opts.CallTimeout < 0 || opts.MaxBackoff < 0 {
		errs = append(errs, errors.New("bootstrap-agent: durations must not be negative"))
	}
	if opts.Logger == nil {
		errs = append(errs, errors.New("bootstrap-agent: no logger"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Interval == 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 25 * time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	return &Agent{opts: opts, log: opts.Logger, now: time.Now, state: map[string]*socketState{}, problems: map[string]string{}}, nil
}

// Run makes a pass every Interval until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	t := time.NewTicker(a.opts.Interval)
	defer t.Stop()
	for {
		a.Pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// PassResult says what one pass did, per socket path.
type PassResult struct {
	Sockets  []string
	HandedTo []string
	Current  []string          // already held the credential
	Failed   map[string]string // socket -> why
}

// Pass reads the credential, finds the plugin sockets and hands the
// credential to each plugin that lacks it.
func (a *Agent) Pass(ctx context.Context) PassResult {
	res := PassResult{Failed: map[string]string{}}
	data, err := os.ReadFile(a.opts.SecretFile)
	if err != nil {
		a.warnOnce("cannot read the bootstrap credential; give the service the swarm secret (--secret)",
			zap.String("file", a.opts.SecretFile), zap.String("cause", pathError(err)))
		return res
	}
	defer clear(data)
	cred, err := conjur.ParseCredential(data)
	if err != nil {
		a.warnOnce("the bootstrap credential is not {\"login\":...,\"api_key\":...} or {\"jwt\":...}; fix the swarm secret",
			zap.String("file", a.opts.SecretFile), zap.String("cause", flatten(err)))
		return res
	}
	fp := cred.Fingerprint()

	res.Sockets, err = FindSockets(a.opts.PluginsDir)
	if err != nil || len(res.Sockets) == 0 {
		cause := "none found"
		if err != nil {
			cause = pathError(err)
		}
		a.warnOnce("no conjur-swarm plugin socket found; is the plugin enabled on this node, and /run/docker/plugins mounted?",
			zap.String("plugins_dir", a.opts.PluginsDir), zap.String("cause", cause))
		return res
	}
	a.last = ""
	for _, sock := range res.Sockets {
		outcome, err := a.offer(ctx, sock, data, cred.Login, fp)
		switch {
		case err != nil:
			res.Failed[sock] = err.Error()
		case outcome == "handed":
			res.HandedTo = append(res.HandedTo, sock)
		case outcome == "current":
			res.Current = append(res.Current, sock)
		}
	}
	return res
}

// offer asks one plugin for its status and hands the credential over when
// the plugin has none or another one.
func (a *Agent) offer(ctx context.Context, sock string, cred []byte, login, fp string) (string, error) {
	c := NewClient(sock, a.opts.CallTimeout)
	st, err := c.Status(ctx)
	if err != nil {
		a.problem(sock, "plugin did not answer status (not conjur-swarm, or not running)", zap.String("cause", flatten(err)))
		return "", err
	}
	if !st.Configured {
		a.problem(sock, "plugin has no Conjur settings yet; not handing the credential over", zap.String("problem", st.ConfigProblem))
		return "", errors.New("plugin not configured: " + st.ConfigProblem)
	}
	// The key never leaves the agent for a plugin pinned to another
	// identity (another swarm's plugin, a test plugin on the same host):
	// that plugin would refuse it, but only after receiving it.
	if login != "" && st.Conjur.Login != "" && st.Conjur.Login != login {
		a.problem(sock, "plugin is pinned to another Conjur login; not handing the credential over",
			zap.String("plugin_login", st.Conjur.Login), zap.String("credential_login", login))
		return "", fmt.Errorf("plugin is pinned to login %q, the credential is for %q", st.Conjur.Login, login)
	}
	delete(a.problems, sock)
	if st.Conjur.HasCredential() && st.Conjur.CredentialFingerprint == fp {
		delete(a.state, sock)
		return "current", nil
	}
	s := a.state[sock]
	if s != nil && s.fingerprint == fp && a.now().Before(s.retryAt) {
		return "", fmt.Errorf("refused earlier; next try at %s", s.retryAt.Format(time.RFC3339))
	}
	ans, err := c.Bootstrap(ctx, cred)
	if err == nil && ans.Err != "" {
		err = errors.New(ans.Err)
	}
	if err != nil {
		if s == nil || s.fingerprint != fp {
			s = &socketState{fingerprint: fp, backoff: a.opts.Interval}
			a.state[sock] = s
		} else {
			s.backoff = min(2*s.backoff, a.opts.MaxBackoff)
		}
		s.retryAt = a.now().Add(s.backoff)
		a.log.Warn("plugin refused the credential", zap.String("socket", sock), zap.String("fingerprint", fp),
			zap.String("err", flatten(err)), zap.Time("retry_at", s.retryAt))
		return "", err
	}
	delete(a.state, sock)
	previous := "none"
	if st.Conjur.HasCredential() {
		previous = st.Conjur.CredentialFingerprint
	}
	a.log.Info("credential handed over", zap.String("socket", sock), zap.String("fingerprint", ans.Fingerprint),
		zap.String("previous_fingerprint", previous))
	return "handed", nil
}

// problem logs a socket's problem when it differs from the last one logged
// for that socket, so a stuck plugin does not fill the log every interval.
func (a *Agent) problem(sock, msg string, fields ...zap.Field) {
	if a.problems[sock] == msg {
		return
	}
	a.problems[sock] = msg
	a.log.Warn(msg, append([]zap.Field{zap.String("socket", sock)}, fields...)...)
}

func (a *Agent) warnOnce(msg string, fields ...zap.Field) {
	if a.last == msg {
		return
	}
	a.last = msg
	a.log.Warn(msg, fields...)
}

// FindSockets returns the plugin sockets under dir: dir/conjur.sock (a
// legacy plugin) and dir/<pluginID>/conjur.sock (managed plugins), sorted.
func FindSockets(dir string) ([]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	candidates := []string{filepath.Join(dir, SocketName)}
	more, err := filepath.Glob(filepath.Join(dir, "*", SocketName))
	if err != nil {
		return nil, err
	}
	candidates = append(candidates, more...)
	var out []string
	for _, p := range candidates {
		fi, err := os.Stat(p)
		if err == nil && fi.Mode().Type() == fs.ModeSocket {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// pathError renders a file error without anything but the path and reason.
func pathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + pe.Path + ": " + pe.Err.Error()
	}
	return flatten(err)
}
