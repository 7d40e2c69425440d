package bootstrap

import (
	"context"
	"os"
	"regexp"
	"sort"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// DefaultWatchInterval is how often the bootstrap agent looks for new or
// restarted plugin sockets between its passes: a restarted plugin has lost
// its handed-over credential, and tasks fail NO_CREDENTIAL until it gets it
// back.
const DefaultWatchInterval = time.Second

// socketStamp tells one socket file from the next at the same path: a
// plugin that starts (or restarts) creates its socket anew.
type socketStamp struct {
	ino   uint64
	mtime time.Time
}

// socketStamps reads the stamp of every plugin socket under dir. It only
// stats files: looking costs no call to any plugin.
func socketStamps(dir string) map[string]socketStamp {
	socks, _ := pluginapi.FindSockets(dir)
	out := make(map[string]socketStamp, len(socks))
	for _, s := range socks {
		fi, err := os.Stat(s)
		if err != nil {
			continue
		}
		st := socketStamp{mtime: fi.ModTime()}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.ino = sys.Ino
		}
		out[s] = st
	}
	return out
}

// newSockets lists the sockets of now that were not in before, or are
// another file than before (the plugin behind them started since).
func newSockets(before, now map[string]socketStamp) []string {
	var out []string
	for s, st := range now {
		if old, ok := before[s]; !ok || old != st {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Run makes a pass at once and then every Interval until ctx is done. In
// between it looks at the plugin sockets every WatchInterval, and a socket
// that appeared or was created anew (a plugin enabled, restarted or
// upgraded) gets a pass at once, without waiting for a back-off earned by
// the plugin that was there before. A new socket that did not answer yet
// (its plugin still starting) is asked again at the next look, for
// youngSocket after it was created.
func (a *Agent) Run(ctx context.Context) error {
	pass := time.NewTicker(a.opts.Interval)
	defer pass.Stop()
	watch := time.NewTicker(a.opts.WatchInterval)
	defer watch.Stop()
	seen := socketStamps(a.opts.PluginsDir)
	starting := a.starting(a.Pass(ctx), seen)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-pass.C:
			seen = socketStamps(a.opts.PluginsDir)
		case <-watch.C:
			now := socketStamps(a.opts.PluginsDir)
			fresh := newSockets(seen, now)
			seen = now
			if len(fresh) == 0 && !starting {
				continue
			}
			if len(fresh) > 0 {
				a.forget(fresh)
				a.log.Info("new or restarted plugin socket; handing the credential over now", zap.Strings("sockets", fresh))
			}
		}
		starting = a.starting(a.Pass(ctx), seen)
	}
}

// youngSocket is how long after its socket appeared a plugin that does not
// answer yet is taken to be starting (and asked again at every look).
// Older silent sockets (left by a plugin that died) wait for the next pass.
const youngSocket = 30 * time.Second

// starting reports whether a socket of the pass did not answer and is
// young: its plugin is probably still starting.
func (a *Agent) starting(res PassResult, stamps map[string]socketStamp) bool {
	for _, s := range res.Unanswered {
		if st, ok := stamps[s]; ok && a.now().Sub(st.mtime) < youngSocket {
			return true
		}
	}
	return false
}

// forget drops the back-off of sockets whose plugin has started anew: it
// was earned by the plugin that was there before.
func (a *Agent) forget(socks []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range socks {
		delete(a.state, s)
	}
}

// refusalCode reads the code of a plugin's refusal: "conjur-swarm [CODE] ...".
var refusalCode = regexp.MustCompile(`\[([A-Z_]+)\]`)

// transientRefusal reports whether a refusal says nothing about the key
// (errcode's Transient: Conjur could not be reached or verified, a CA being
// fixed, a network outage), so retrying at the normal interval cannot
// hammer Conjur with a wrong key and a growing back-off would only delay
// the recovery.
func transientRefusal(err error) bool {
	m := refusalCode.FindStringSubmatch(err.Error())
	return m != nil && errcode.Code(m[1]).Transient()
}

// logRefusal logs a refused credential at error level the first time that
// fingerprint is refused (a wrong key in the bootstrap secret is silent
// otherwise until the next plugin restart), and at debug level after.
func (a *Agent) logRefusal(sock, fp string, err error, retryAt time.Time) {
	a.mu.Lock()
	first := !a.refused[fp]
	a.refused[fp] = true
	a.mu.Unlock()
	fields := []zap.Field{zap.String("socket", sock), zap.String("fingerprint", fp),
		zap.String("err", pluginapi.OneLine(err)), zap.Time("retry_at", retryAt)}
	if first {
		a.log.Error("plugin refused the credential: fix the bootstrap secret (this fingerprint is logged at error level once)", fields...)
		return
	}
	a.log.Debug("plugin refused the credential again", fields...)
}
