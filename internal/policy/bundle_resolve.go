package policy

import (
	"fmt"
	"strings"
)

// resolveBundle expands every member's variable (and version) with the same
// safety rules and within check as a rule's variable. It returns the
// resolved bundle, or the condition and reason of the first member, by
// name, that denies; the reason names the member.
func (p *Policy) resolveBundle(b *bundleSpec, req Request, groups map[string]groupVal) (*Bundle, string, string) {
	out := &Bundle{Format: b.format, Members: make([]Member, len(b.members)), spec: b}
	for i, ms := range b.members {
		m, cond, why := p.resolveMember(ms, req, groups)
		if why != "" {
			return nil, cond, fmt.Sprintf("bundle member %q: %s", ms.name, why)
		}
		out.Members[i] = m
	}
	return out, "", ""
}

// resolveMember resolves one member; on a deny it returns the condition
// (bundle.variables[NAME], with .version or .within when those fail) and why.
func (p *Policy) resolveMember(ms memberSpec, req Request, groups map[string]groupVal) (Member, string, string) {
	path := "bundle.variables[" + ms.name + "]"
	id, cond, why := expand(ms.variable, req, groups, true)
	if why != "" {
		return Member{}, path + " " + cond, why
	}
	if why := checkID(id); why != "" {
		return Member{}, path, fmt.Sprintf("the resolved id %s %s", quote(id), why)
	}
	if !underWithin(id, p.within) {
		return Member{}, path + ".within", fmt.Sprintf("the resolved id %s is not under %s", quote(id), strings.Join(p.within, ", "))
	}
	m := Member{Name: ms.name, Variable: id, Field: ms.shape.field, Decode: ms.shape.decode}
	if ms.version != nil {
		text, cond, why := expand(*ms.version, req, groups, false)
		if why != "" {
			return Member{}, path + ".version " + strings.TrimPrefix(cond, "variable "), why
		}
		v, why := parseVersion(text)
		if why != "" {
			return Member{}, path + ".version", fmt.Sprintf("%s %s", quote(text), why)
		}
		m.Version = v
	}
	return m, "", ""
}
