package policy

import (
	"fmt"
	"strings"
)

// resolveBundle expands every member's variable (and version) with the same
// safety rules and within check as a rule's variable. It returns the
// resolved bundle, or the refusal of the first member, by name, that
// denies; the reason names the member.
func (p *Policy) resolveBundle(b *bundleSpec, req *Request, groups map[string]groupVal) (*Bundle, refusal) {
	out := &Bundle{Format: b.format, Members: make([]Member, len(b.members)), spec: b}
	for i, ms := range b.members {
		m, no := p.resolveMember(ms, req, groups)
		if no.denies() {
			return nil, refusal{no.condition, fmt.Sprintf("bundle member %q: %s", ms.name, no.reason)}
		}
		out.Members[i] = m
	}
	return out, refusal{}
}

// resolveMember resolves one member; on a deny it returns the refusal, whose
// condition is bundle.variables[NAME], with .version or .within when those
// fail.
func (p *Policy) resolveMember(ms memberSpec, req *Request, groups map[string]groupVal) (Member, refusal) {
	path := "bundle.variables[" + ms.name + "]"
	id, no := expand(ms.variable, req, groups, true)
	if no.denies() {
		return Member{}, refusal{path + " " + no.condition, no.reason}
	}
	if why := checkID(id); why != "" {
		return Member{}, refusal{path, fmt.Sprintf("the resolved id %s %s", quote(id), why)}
	}
	if !underWithin(id, p.within) {
		return Member{}, refusal{path + ".within", fmt.Sprintf("the resolved id %s is not under %s", quote(id), strings.Join(p.within, ", "))}
	}
	m := Member{Name: ms.name, Variable: id, Field: ms.shape.field, Decode: ms.shape.decode}
	if ms.version != nil {
		text, no := expand(*ms.version, req, groups, false)
		if no.denies() {
			return Member{}, refusal{path + ".version " + strings.TrimPrefix(no.condition, "variable "), no.reason}
		}
		v, why := parseVersion(text)
		if why != "" {
			return Member{}, refusal{path + ".version", fmt.Sprintf("%s %s", quote(text), why)}
		}
		m.Version = v
	}
	return m, refusal{}
}
