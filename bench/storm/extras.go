package main

import (
	"context"
	"fmt"
	"strings"
)

// runExtras runs the scenarios that explain the burst's figures, with the
// same requests and server latency:
//   - floor: a driver that answers from memory, on the same handler and
//     socket: what the load generator and the protocol cost on this machine;
//   - cached: the plugin with a reuse: true rule and CONJUR_SWARM_CACHE_TTL=30s;
//   - one P: the plugin with GOMAXPROCS=1 (oneP), in the burst and in the
//     per-node model.
//
// f holds the processes; the cached plugin is started here and stopped on return.
func runExtras(ctx context.Context, o options, load *load, f *fleet) ([]stormResult, error) {
	cj, oneP := f.cj, f.oneP
	var out []stormResult
	add := func(r stormResult, err error) error {
		if err != nil {
			return err
		}
		r.print()
		if r.failed > 0 {
			return fmt.Errorf("storm %q: %d answers failed (first: %s)", r.name, r.failed, r.firstErr)
		}
		out = append(out, r)
		return nil
	}

	if err := add(load.storm(ctx, "floor", f.nullSock, o.concurrency, cj, f.null)); err != nil {
		return nil, err
	}

	cached, cachedSock, _, err := startPlugin(ctx, "cached", o.plugin, true, append([]string{"CONJUR_SWARM_CACHE_TTL=30s"}, o.pluginEnv...), cj, f.work)
	if err != nil {
		return nil, err
	}
	defer cached.stop()
	if err := warm(ctx, cachedSock); err != nil {
		return nil, err
	}
	if err := add(load.storm(ctx, "ours, reuse: true + cache 30s", cachedSock, o.concurrency, cj, cached)); err != nil {
		return nil, err
	}

	if oneP != nil {
		if err := add(load.storm(ctx, onePName, oneP.sock, o.concurrency, cj, oneP.proc)); err != nil {
			return nil, err
		}
		if err := add(load.perNode(ctx, fmt.Sprintf("%s, per-node model", onePName), oneP.sock, o.nodes, cj, oneP.proc)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// onePName names the GOMAXPROCS=1 plugin's scenarios.
const onePName = "ours, GOMAXPROCS=1"

// warm makes a plugin authenticate without caching any storm variable: it
// asks for a variable that does not exist (answered NOT_FOUND).
func warm(ctx context.Context, socket string) error {
	c := newSocketClient(socket, 1)
	defer c.close()
	body := []byte(`{"SecretName":"warm","SecretLabels":{"conjur.variable":"apps/storm/warm-up"},"ServiceName":"warm"}`)
	res, err := c.get(ctx, body)
	if err != nil {
		return fmt.Errorf("warming the cached plugin: %w", err)
	}
	if !strings.Contains(res.Err, "NOT_FOUND") {
		return fmt.Errorf("warming the cached plugin: want a NOT_FOUND answer, got %q", res.Err)
	}
	return nil
}
