// Package bootstrap is the bootstrap agent (`conjur-swarm bootstrap-agent`):
// it hands the plugin's Conjur credential from a swarm secret to every
// conjur-swarm plugin socket on the node that it belongs to. It is a client
// of the plugin socket (package pluginapi) and is never linked into the
// GetSecret path; the rollout agent (package rollout) is its sibling.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// Options configure the bootstrap agent.
type Options struct {
	// SecretFile holds the credential JSON (a swarm secret, e.g.
	// /run/secrets/conjur-bootstrap). It is re-read on every pass.
	SecretFile string
	// PluginsDir is the host's /run/docker/plugins as mounted into the agent.
	PluginsDir string
	// Interval between passes (default 10s).
	Interval time.Duration
	// WatchInterval is how often the agent looks for new or restarted
	// plugin sockets between passes (default DefaultWatchInterval).
	WatchInterval time.Duration
	// CallTimeout bounds each call to a plugin (default 25s: a handoff
	// authenticates to Conjur first).
	CallTimeout time.Duration
	// MaxBackoff caps the wait before retrying a plugin that refused the
	// credential (default 5m), so a wrong credential does not hammer Conjur.
	MaxBackoff time.Duration
	Logger     *zap.Logger
}

// Agent hands the bootstrap credential to each conjur-swarm plugin socket
// it finds whose status reports the credential's login, account and one of
// its appliance URLs, and again whenever such a plugin reports no credential
// or another one. It never logs the credential, only its fingerprint.
//
// What it trusts: a socket under the plugins directory that reports the
// right login, account and URL. Creating one there takes root on the node,
// which is part of the trusted base (docs/security.md).
type Agent struct {
	opts Options
	log  *zap.Logger
	now  func() time.Time
	last string // the last "nothing to do" warning, to log it once

	mu       sync.Mutex              // guards state and problems: sockets are offered in parallel
	state    map[string]*socketState // by socket path
	problems map[string]string       // by socket path: the last problem logged for it
	refused  map[string]bool         // fingerprints refused so far (logged at error level once)
}

type socketState struct {
	fingerprint string    // the fingerprint last refused
	retryAt     time.Time // do not offer that fingerprint again before this
	backoff     time.Duration
}

// maxParallelOffers bounds how many sockets one pass talks to at once: a
// socket that hangs until CallTimeout delays no other plugin's handover.
const maxParallelOffers = 8

// New checks the options and returns an Agent.
func New(opts Options) (*Agent, error) {
	var errs []error
	if opts.SecretFile == "" {
		errs = append(errs, errors.New("bootstrap-agent: the credential file path is empty (--secret-file)"))
	}
	if opts.PluginsDir == "" {
		errs = append(errs, errors.New("bootstrap-agent: the plugins directory is empty (--plugins-dir)"))
	}
	if opts.Interval < 0 || opts.WatchInterval < 0 || opts.CallTimeout < 0 || opts.MaxBackoff < 0 {
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
	if opts.WatchInterval == 0 {
		opts.WatchInterval = DefaultWatchInterval
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 25 * time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	return &Agent{opts: opts, log: opts.Logger, now: time.Now, state: map[string]*socketState{}, problems: map[string]string{}, refused: map[string]bool{}}, nil
}

// PassResult says what one pass did, per socket path.
type PassResult struct {
	Sockets  []string
	HandedTo []string
	Current  []string          // already held the credential
	Skipped  map[string]string // socket -> why: a plugin of another login, account or Conjur
	Failed   map[string]string // socket -> why
	// Unanswered lists the failed sockets that did not answer status at
	// all (a plugin still starting, or a socket left by a dead one).
	Unanswered []string
	// Problem says why no socket was offered anything (no credential, an
	// unusable one, no socket found); "" when the sockets were tried.
	Problem string
}

// outcome is what one offer came to.
type outcome int

const (
	outcomeFailed outcome = iota
	outcomeHanded
	outcomeCurrent
	outcomeSkipped
	outcomeUnanswered // no answer to status: failed, and worth asking again soon
)

// Pass reads the credential, finds the plugin sockets and hands the
// credential to each plugin it belongs to that lacks it. The sockets are
// offered in parallel; one that fails, hangs or answers nonsense changes
// nothing for the others.
func (a *Agent) Pass(ctx context.Context) PassResult {
	res := PassResult{Skipped: map[string]string{}, Failed: map[string]string{}}
	data, err := os.ReadFile(a.opts.SecretFile)
	if err != nil {
		res.Problem = "cannot read the bootstrap credential: " + pathError(err) + "; give the service the swarm secret (--secret)"
		a.warnOnce("cannot read the bootstrap credential; give the service the swarm secret (--secret)",
			zap.String("file", a.opts.SecretFile), zap.String("cause", pathError(err)))
		return res
	}
	defer clear(data)
	h, err := pluginapi.ParseHandoff(data)
	if err != nil {
		res.Problem = "the bootstrap credential in " + a.opts.SecretFile + " cannot be used: " + pluginapi.OneLine(err)
		a.warnOnce("the bootstrap credential cannot be used; fix the swarm secret",
			zap.String("file", a.opts.SecretFile), zap.String("cause", pluginapi.OneLine(err)))
		return res
	}

	res.Sockets, err = pluginapi.FindSockets(a.opts.PluginsDir)
	if err != nil || len(res.Sockets) == 0 {
		cause := "none found"
		if err != nil {
			cause = pathError(err)
		}
		res.Problem = "no conjur-swarm plugin socket under " + a.opts.PluginsDir + " (" + cause + "); is the plugin enabled on this node, and /run/docker/plugins mounted?"
		a.warnOnce("no conjur-swarm plugin socket found; is the plugin enabled on this node, and /run/docker/plugins mounted?",
			zap.String("plugins_dir", a.opts.PluginsDir), zap.String("cause", cause))
		return res
	}
	a.last = ""

	type result struct {
		outcome outcome
		why     string
	}
	results := make([]result, len(res.Sockets))
	slots := make(chan struct{}, maxParallelOffers)
	var wg sync.WaitGroup
	for i, sock := range res.Sockets {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			o, why := a.offer(ctx, sock, data, h)
			results[i] = result{o, why}
		}()
	}
	wg.Wait()
	for i, sock := range res.Sockets {
		switch r := results[i]; r.outcome {
		case outcomeHanded:
			res.HandedTo = append(res.HandedTo, sock)
		case outcomeCurrent:
			res.Current = append(res.Current, sock)
		case outcomeSkipped:
			res.Skipped[sock] = r.why
		case outcomeUnanswered:
			res.Failed[sock] = r.why
			res.Unanswered = append(res.Unanswered, sock)
		default:
			res.Failed[sock] = r.why
		}
	}
	return res
}

// judge decides, from a plugin's status alone, whether the handoff belongs
// to that plugin: skipped (another login, account or Conjur, or a status
// that does not say), failed (not configured), current (it holds this
// credential already) or handed (offer it). Every field of the status is
// another process's say: a missing one is a mismatch, never a crash.
func judge(st pluginapi.Status, h pluginapi.Handoff, fp string) (outcome, string) {
	if !st.Configured {
		return outcomeFailed, "plugin not configured: " + pluginapi.Clip(st.ConfigProblem)
	}
	c := st.Conjur
	if c == nil {
		return outcomeSkipped, "the plugin's status has no Conjur section (not conjur-swarm, or too old to say which Conjur it serves)"
	}
	if why := h.LoginMismatch(c.Login); why != "" {
		return outcomeSkipped, why
	}
	urls := make([]string, 0, len(c.URLs))
	for _, u := range c.URLs {
		urls = append(urls, u.URL)
	}
	if why := h.ConjurMismatch(c.Account, urls); why != "" {
		return outcomeSkipped, why
	}
	if c.HasCredential() && c.CredentialFingerprint == fp {
		return outcomeCurrent, ""
	}
	return outcomeHanded, ""
}

// offer asks one plugin for its status and hands the credential over when
// the credential belongs to that plugin and the plugin has none or another
// one. It reports what came of it and, unless handed or current, why.
func (a *Agent) offer(ctx context.Context, sock string, cred []byte, h pluginapi.Handoff) (outcome, string) {
	fp := h.Credential.Fingerprint()
	c := pluginapi.NewClient(sock, a.opts.CallTimeout)
	st, err := c.Status(ctx)
	if err != nil {
		a.problem(sock, "plugin did not answer status (not conjur-swarm, or not running)", zap.String("cause", pluginapi.OneLine(err)))
		return outcomeUnanswered, pluginapi.OneLine(err)
	}
	verdict, why := judge(st, h, fp)
	switch verdict {
	case outcomeFailed:
		a.problem(sock, "plugin has no Conjur settings yet; not handing the credential over", zap.String("problem", pluginapi.Clip(st.ConfigProblem)))
		return verdict, why
	case outcomeSkipped:
		// The key never leaves the agent for a plugin of another identity
		// or Conjur (another swarm's plugin, a staging plugin on the same
		// host): that plugin would send it to its own Conjur.
		a.problem(sock, "the credential does not belong to this plugin; not handing it over", zap.String("why", why))
		return verdict, why
	case outcomeCurrent:
		a.mu.Lock()
		delete(a.problems, sock)
		delete(a.state, sock)
		a.mu.Unlock()
		return verdict, ""
	}

	a.mu.Lock()
	delete(a.problems, sock)
	s := a.state[sock]
	wait := s != nil && s.fingerprint == fp && a.now().Before(s.retryAt)
	var retryAt time.Time
	if s != nil {
		retryAt = s.retryAt
	}
	a.mu.Unlock()
	if wait {
		return outcomeFailed, fmt.Sprintf("refused earlier; next try at %s", retryAt.Format(time.RFC3339))
	}

	ans, err := c.Bootstrap(ctx, cred)
	switch {
	case err != nil:
	case ans.Err != "":
		err = errors.New(pluginapi.Clip(ans.Err))
	case !ans.OK || ans.Fingerprint != fp:
		// Only the plugin that adopted this very credential answers its
		// fingerprint; anything else is not a handover.
		err = fmt.Errorf("the plugin answered ok=%t with fingerprint %q, not the fingerprint sent (%s): it did not adopt this credential",
			ans.OK, pluginapi.Clip(ans.Fingerprint), fp)
	}
	if err != nil {
		a.mu.Lock()
		s := a.state[sock]
		switch {
		case s == nil || s.fingerprint != fp:
			s = &socketState{fingerprint: fp, backoff: a.opts.Interval}
			a.state[sock] = s
		case transientRefusal(err):
			s.backoff = a.opts.Interval // not the key's fault: no growing back-off
		default:
			s.backoff = min(2*s.backoff, a.opts.MaxBackoff)
		}
		s.retryAt = a.now().Add(s.backoff)
		retryAt := s.retryAt
		a.mu.Unlock()
		a.logRefusal(sock, fp, err, retryAt)
		return outcomeFailed, pluginapi.OneLine(err)
	}
	a.mu.Lock()
	delete(a.state, sock)
	a.mu.Unlock()
	previous := "none"
	if st.Conjur.HasCredential() {
		previous = pluginapi.Clip(st.Conjur.CredentialFingerprint)
	}
	a.log.Info("credential handed over", zap.String("socket", sock), zap.String("fingerprint", fp),
		zap.String("previous_fingerprint", previous))
	return outcomeHanded, ""
}

// problem logs a socket's problem when it differs from the last one logged
// for that socket, so a stuck plugin does not fill the log every interval.
func (a *Agent) problem(sock, msg string, fields ...zap.Field) {
	a.mu.Lock()
	seen := a.problems[sock] == msg
	a.problems[sock] = msg
	a.mu.Unlock()
	if !seen {
		a.log.Warn(msg, append([]zap.Field{zap.String("socket", sock)}, fields...)...)
	}
}

func (a *Agent) warnOnce(msg string, fields ...zap.Field) {
	if a.last == msg {
		return
	}
	a.last = msg
	a.log.Warn(msg, fields...)
}

// pathError renders a file error without anything but the path and reason.
func pathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + pe.Path + ": " + pe.Err.Error()
	}
	return pluginapi.OneLine(err)
}
