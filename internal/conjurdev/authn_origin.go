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

// restrictedTo parses a restricted_to value into CIDRs.
// A null value restricts nothing.
func restrictedTo(n *yaml.Node) ([]netip.Prefix, error) {
	items := []*yaml.Node{n}
	switch {
	case n.Kind == yaml.SequenceNode:
		items = n.Content
	case n.Kind == yaml.MappingNode:
		return nil, errAt(n, "Attribute 'restricted_to' can't be a mapping")
	case n.Tag == "!!null":
		return nil, nil
	}
	var out []netip.Prefix
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

// cidrError is a restricted_to value Conjur::CIDR refuses, worded as
// Conjur words it.
type cidrError string

func (e cidrError) Error() string { return string(e) }

// parseConjurCIDR is Conjur::CIDR: an address (a /32 or /128) or a range
// whose address has no bits right of its mask, written "a.b.c.d/n".
func parseConjurCIDR(text string) (netip.Prefix, error) {
	invalid := cidrError("Invalid IP address or CIDR range '" + text + "'")
	if !strings.Contains(text, "/") {
		a, err := netip.ParseAddr(text)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, invalid
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(text)
	if err != nil {
		return netip.Prefix{}, invalid
	}
	if masked := p.Masked(); masked != p {
		return netip.Prefix{}, cidrError("Invalid IP address or CIDR range '" + text + "': Value has bits set to right of mask. Did you mean '" + masked.String() + "'?")
	}
	return p, nil
}

// mergeRestrictedTo is what a load leaves on a role: POST adds to what it
// had, PATCH and PUT replace it with what the document gives.
func mergeRestrictedTo(mode LoadMode, had, given []netip.Prefix) []netip.Prefix {
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
	var cidrs []netip.Prefix
	if res, ok := s.st.resources[role]; ok {
		cidrs = res.restrictedTo
	}
	s.mu.RUnlock()
	return validOrigin(cidrs, ip)
}

// validOrigin is Conjur's valid_origin? check, shared by roles and host
// factory tokens: no ranges allow every address; otherwise ip must lie
// inside one of them.
func validOrigin(cidrs []netip.Prefix, ip string) bool {
	if len(cidrs) == 0 {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, p := range cidrs {
		if p.Contains(a.Unmap()) {
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
