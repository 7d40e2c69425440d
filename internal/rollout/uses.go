package rollout

import (
	"sort"

	"github.com/cyberark/conjur-swarm/internal/policy"
	"github.com/cyberark/conjur-swarm/internal/swarmapi"
)

// Use is one driver secret of one service, resolved through the mapping
// policy as the plugin would resolve it for any task of that service.
type Use struct {
	Service  swarmapi.Service
	Secret   swarmapi.Secret
	Target   string // the file name under /run/secrets
	Decision policy.Decision
	// NodeDependent: the outcome could differ per node (a rule reads
	// {node} or matches on the node), so nothing is known per service.
	NodeDependent bool
}

// Variables returns the variable ids the use reads (a bundle's members, or
// the variable): none unless the mapping allows it and the outcome does not
// depend on the node.
func (u Use) Variables() []string {
	if !u.Decision.Allow || u.NodeDependent {
		return nil
	}
	return u.Decision.Variables()
}

// Watched returns the variables of Variables whose latest version the use
// reads: a rotation changes what its tasks get. Pinned ones (the rule or
// the bundle member names a version) are left out.
func (u Use) Watched() []string {
	if !u.Decision.Allow || u.NodeDependent {
		return nil
	}
	if b := u.Decision.Bundle; b != nil {
		var out []string
		for _, m := range b.Members {
			if m.Version == 0 {
				out = append(out, m.Variable)
			}
		}
		return out
	}
	if u.Decision.Version != 0 {
		return nil
	}
	return u.Variables()
}

// Drivers is a set of secret driver names, compared as the engine resolves
// plugin names (swarmapi.NormalizeDriver).
type Drivers map[string]bool

// NewDrivers returns the set of the given names.
func NewDrivers(names ...string) Drivers {
	d := Drivers{}
	for _, n := range names {
		if n = swarmapi.NormalizeDriver(n); n != "" {
			d[n] = true
		}
	}
	return d
}

// Has reports whether name is one of the set.
func (d Drivers) Has(name string) bool { return name != "" && d[swarmapi.NormalizeDriver(name)] }

// Uses resolves every secret of the given services whose driver is one of
// drivers, ordered by service name then secret name. A service secret whose
// secret object is not in secrets (removed meanwhile) is left out.
func Uses(pol *policy.Policy, drivers Drivers, services []swarmapi.Service, secrets []swarmapi.Secret) []Use {
	byID := make(map[string]swarmapi.Secret, len(secrets))
	for _, s := range secrets {
		byID[s.ID] = s
	}
	var out []Use
	for _, svc := range services {
		for _, ref := range svc.Secrets {
			sec, ok := byID[ref.SecretID]
			if !ok || !drivers.Has(sec.Driver) {
				continue
			}
			d, nodeDep := pol.ResolveService(policy.Request{
				SecretName:    sec.Name,
				SecretLabels:  sec.Labels,
				ServiceName:   svc.Name,
				ServiceLabels: svc.Labels,
				Image:         svc.Image,
			})
			out = append(out, Use{Service: svc, Secret: sec, Target: ref.Target, Decision: d, NodeDependent: nodeDep})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Service.Name != out[j].Service.Name {
			return out[i].Service.Name < out[j].Service.Name
		}
		return out[i].Secret.Name < out[j].Secret.Name
	})
	return out
}
