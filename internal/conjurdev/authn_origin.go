package conjurdev

import (
	"net/netip"
	"slices"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"
)

// restricted_to, as Conjur 1.24 keeps and checks it: a user or host record
// may name the networks it authenticates from (one CIDR or a list; a bare
// address is a /32 or /128). Conjur's policy parser refuses a range with
// bits right of its mask (Conjur::CIDR#valid_input?), the loader stores
// the list on the role's credentials (Loader::Handlers::RestrictedTo: a
// POST adds to what the role had, a PATCH or PUT replaces it, so a PATCH
// that declares the host again without restricted_to lifts the
// restriction), and every authenticator refuses a role outside its list
// with CONJ00003E (Authentication::ValidateOrigin, Role#valid_origin?) at
// authentication only: tokens already issued stay valid, and a Basic
// login (GET /authn/{account}/login) is not checked.

// restrictedTo parses a restricted_to value into normalised CIDRs.
// A null value restricts nothing.
func restrictedTo(n *yaml.Node) ([]string, error) {
	items := []*yaml.Node{n}
	switch {
	case n.Kind == yaml.SequenceNode:
		items = n.Content
	case n.Kind == yaml.MappingNode:
		return nil, errAt(n, "Attribute 'restricted_to' can't be a mapping")
	case n.Tag == "!!null":
		return nil, nil
	}
	var out []string
	for _, it := range items {
		if it.Kind != yaml.ScalarNode {
			return nil, errAt(it, "Invalid IP address or CIDR range '%s'", yamlText(it))
		}
		cidr, err := parseConjurCIDR(it.Value)
		if err != nil {
			return nil, errAt(it, "%s", err.Error())
		}
		if !slices.Contains(out, cidr) {
			out = append(out, cidr)
		}
	}
	return out, nil
}

// yamlText is a short rendering of a node for an error message.
func yamlText(n *yaml.Node) string {
	b, err := yaml.Marshal(n)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

type cidrError string

func (e cidrError) Error() string { return string(e) }

// parseConjurCIDR is Conjur::CIDR: an address (a /32 or /128) or a range
// whose address has no bits right of its mask, written "a.b.c.d/n".
func parseConjurCIDR(text string) (string, error) {
	invalid := cidrError("Invalid IP address or CIDR range '" + text + "'")
	if !strings.Contains(text, "/") {
		a, err := netip.ParseAddr(text)
		if err != nil || a.Zone() != "" {
			return "", invalid
		}
		return netip.PrefixFrom(a, a.BitLen()).String(), nil
	}
	p, err := netip.ParsePrefix(text)
	if err != nil {
		return "", invalid
	}
	if masked := p.Masked(); masked != p {
		return "", cidrError("Invalid IP address or CIDR range '" + text + "': Value has bits set to right of mask. Did you mean '" + masked.String() + "'?")
	}
	return p.String(), nil
}

// mergeRestrictedTo is what a load leaves on a role: POST adds to what it
// had, PATCH and PUT replace it with what the document gives.
func mergeRestrictedTo(mode LoadMode, had, given []string) []string {
	if mode != ModePost {
		return slices.Clone(given)
	}
	out := slices.Clone(had)
	for _, c := range given {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// originAllowed is Role#valid_origin?: a role without restricted_to may
// authenticate from anywhere, one with it only from inside one of its
// ranges. ip is the client address as clientIP reads it.
func (s *Server) originAllowed(role, ip string) bool {
	s.mu.RLock()
	res, ok := s.st.resources[role]
	var cidrs []string
	if ok {
		cidrs = res.restrictedTo
	}
	s.mu.RUnlock()
	if len(cidrs) == 0 {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// errInvalidOrigin is Conjur's Errors::Authentication::InvalidOrigin.
var errInvalidOrigin = authnErr("Errors::Authentication::InvalidOrigin", "CONJ00003E", "User is not authorized to login from the current origin")

// logOriginRefused logs a refusal for restricted_to as Conjur logs it.
func (s *Server) logOriginRefused(login, ip string) {
	s.log.Info("authentication refused", zap.String("login", login), zap.String("client_ip", ip),
		zap.Int("status", errInvalidOrigin.status), zap.String("reason", errInvalidOrigin.Error()))
}
