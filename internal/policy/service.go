package policy

// ResolveService decides req as the plugin would for every task of one
// service, with no node known: req.NodeID is ignored. It is what the rollout
// agent and `services-using` use, since they look at services, not tasks.
//
// nodeDependent is true when the outcome could differ from node to node: a
// rule that would be reached has a node condition in its match (so its match
// cannot be decided), or the deciding rule reads the node in its variable,
// version, bundle members or allow. Such a decision says nothing reliable about the service
// and the caller should skip it; the Decision still names the rule.
func (p *Policy) ResolveService(req Request) (d Decision, nodeDependent bool) {
	req.NodeID = ""
	for _, r := range p.rules {
		if r.matchReadsNode() {
			if r.matchesIgnoringNode(&req) {
				return Decision{Rule: r.name, Account: p.account, DoNotReuse: !r.reuse, Condition: "match.node",
					Reason: oneLine("rule " + quote(r.name) + " matches on the node, which a service does not have")}, true
			}
			continue
		}
		groups, failed := r.matches(&req)
		if failed != "" {
			continue
		}
		p.decide(r, &req, groups, &d)
		return d, r.decideReadsNode()
	}
	return p.Resolve(req), false
}

// matchReadsNode reports whether a match condition of r looks at the node.
func (r *rule) matchReadsNode() bool {
	for _, c := range r.match {
		if c.field == fNode {
			return true
		}
	}
	return false
}

// matchesIgnoringNode reports whether every match condition of r but the
// node's holds.
func (r *rule) matchesIgnoringNode(req *Request) bool {
	for _, c := range r.match {
		if c.field == fNode {
			continue
		}
		v, present := c.field.value(req, c.key)
		if !present {
			return false
		}
		if _, ok := c.first(v); !ok {
			return false
		}
	}
	return true
}

// decideReadsNode reports whether r's variable, version, bundle members or
// allow read the node.
func (r *rule) decideReadsNode() bool {
	if readsNode(r.variable) || (r.version != nil && readsNode(*r.version)) {
		return true
	}
	if r.bundle != nil {
		for _, m := range r.bundle.members {
			if readsNode(m.variable) || (m.version != nil && readsNode(*m.version)) {
				return true
			}
		}
	}
	for _, c := range r.allow {
		if c.field == fNode {
			return true
		}
		for _, p := range c.pats {
			if p.tmpl != nil && readsNode(*p.tmpl) {
				return true
			}
		}
	}
	return false
}

func readsNode(t template) bool {
	for _, ph := range t.placeholders() {
		if ph.kind == phNode {
			return true
		}
	}
	return false
}
