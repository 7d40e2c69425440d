package conjurdev

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Host factories as Conjur 1.24 has them (HostFactoryTokensController,
// HostFactoriesController, HostFactoryToken, HostBuilder): a policy
// declares !host-factory with its layers; a role with execute on it
// creates tokens (an expiration in the future, a count, optional CIDRs);
// a token, sent as Authorization: Token token="...", creates hosts owned
// by the host factory and members of its layers, from an address the
// CIDRs allow. update on the host factory deletes a token.

type hfToken struct {
	factory    string // full id
	expiration time.Time
	cidrs      []netip.Prefix
}

func newHFToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// parseCIDR is Util::CIDR: an address or a network whose host bits are
// zero.
func parseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err == nil && p.Masked() != p {
		err = fmt.Errorf("%s has bits set right of its mask", s)
	}
	return p, err
}

func (s *Server) createHFTokens(w http.ResponseWriter, r *http.Request, c caller) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	form, _ := url.ParseQuery(string(body))
	full, serr := s.st.makeFullID(form.Get("host_factory"), s.account)
	if serr != nil || form.Get("host_factory") == "" {
		writeError(w, argumentError("host_factory"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	hf, ok := s.st.resources[full]
	switch {
	case !ok || !s.st.visible(c.role, hf):
		writeError(w, notFound(full))
		return
	case hf.kind != "host_factory":
		writeError(w, argumentError("Invalid resource kind: "+hf.kind))
		return
	case !s.st.can(c.role, hf, "execute"):
		w.WriteHeader(http.StatusForbidden)
		return
	}
	tok, serr := s.hfTokenFromForm(full, form)
	if serr != nil {
		writeError(w, serr)
		return
	}
	count, err := strconv.Atoi(strings.TrimSpace(form.Get("count")))
	if !form.Has("count") {
		count, err = 1, nil
	}
	if err != nil || count < 1 {
		writeError(w, argumentError("Invalid value for parameter 'count': "+form.Get("count")))
		return
	}
	out := make([]map[string]any, 0, count)
	for range count {
		id, err := newHFToken()
		if err != nil {
			s.writeErr(w, err)
			return
		}
		s.st.hfTokens[id] = tok
		cidrs := make([]string, len(tok.cidrs))
		for i, p := range tok.cidrs {
			cidrs[i] = p.String()
		}
		out = append(out, map[string]any{"expiration": tok.expiration.UTC().Format(time.RFC3339), "cidr": cidrs, "token": id})
	}
	writeJSON(w, http.StatusOK, out)
}

// hfTokenFromForm reads expiration (ISO 8601, in the future) and cidr[].
func (s *Server) hfTokenFromForm(factory string, form url.Values) (hfToken, *StatusError) {
	raw := form.Get("expiration")
	if raw == "" {
		return hfToken{}, argumentError("expiration")
	}
	exp, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return hfToken{}, argumentError("Input is invalid ISO8601 datetime string: " + raw)
	}
	if !exp.After(s.now()) {
		return hfToken{}, argumentError("Value for parameter expiration must be in the future: " + raw)
	}
	tok := hfToken{factory: factory, expiration: exp}
	for _, c := range append(form["cidr[]"], form["cidr"]...) {
		p, err := parseCIDR(c)
		if err != nil {
			return hfToken{}, &StatusError{Status: http.StatusUnprocessableEntity, Code: "unprocessable_entity", Message: "Invalid IP address or CIDR range '" + c + "'"}
		}
		tok.cidrs = append(tok.cidrs, p)
	}
	return tok, nil
}

func (s *Server) deleteHFToken(w http.ResponseWriter, r *http.Request, c caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.st.hfTokens[r.PathValue("token")]
	if !ok {
		writeError(w, notFound("*:host_factory_token:"+r.PathValue("token")))
		return
	}
	if hf, ok := s.st.resources[tok.factory]; !ok || !s.st.can(c.role, hf, "update") {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	delete(s.st.hfTokens, r.PathValue("token"))
	w.WriteHeader(http.StatusNoContent)
}

var hfAuthRE = regexp.MustCompile(`^Token token="(.*)"`)

// createHFHost answers POST /host_factories/hosts: a valid token from an
// allowed address (401 otherwise), an id (422), then the host created, or
// found and given a new API key when the host factory owns it (403 when
// it does not).
func (s *Server) createHFHost(w http.ResponseWriter, r *http.Request) {
	m := hfAuthRE.FindStringSubmatch(r.Header.Get("Authorization"))
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	form, _ := url.ParseQuery(string(body))
	s.mu.Lock()
	defer s.mu.Unlock()
	var tok hfToken
	ok := m != nil
	if ok {
		tok, ok = s.st.hfTokens[m[1]]
	}
	if !ok || !tok.expiration.After(s.now()) || !tok.allows(clientIP(r)) {
		unauthorized(w, "")
		return
	}
	id := form.Get("id")
	switch {
	case id == "":
		writeError(w, argumentError("param is missing or the value is empty: id"))
		return
	case strings.HasPrefix(id, "conjur/") || strings.HasPrefix(id, "/conjur/"):
		writeError(w, argumentError("Invalid id: "+id))
		return
	}
	host, key, err := s.buildHost(tok.factory, strings.TrimPrefix(id, "/"), form)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := s.st.describe(host)
	s.log.Debug("host factory created a host", zap.String("host", host.id))
	writeJSON(w, http.StatusCreated, struct {
		resourceJSON
		APIKey string `json:"api_key"`
	}{out, key})
}

// allows is HostFactoryToken#valid_origin?: no CIDRs, or one holding ip.
func (t hfToken) allows(ip string) bool { return validOrigin(t.cidrs, ip) }

// buildHost is HostBuilder: find and rotate, or create with the form's
// annotations[NAME] and membership in the factory's layers. The caller
// holds s.mu.
func (s *Server) buildHost(factory, id string, form url.Values) (*resource, string, error) {
	full := s.st.fullID("host", id)
	if host, ok := s.st.resources[full]; ok {
		if host.owner != factory {
			return nil, "", &StatusError{Status: http.StatusForbidden, Code: "forbidden", Message: "Forbidden"}
		}
		key, err := s.rotateLocked(host)
		return host, key, err
	}
	key, err := newAPIKey()
	if err != nil {
		return nil, "", err
	}
	policy := s.st.resources[factory].policy
	host := &resource{id: full, kind: "host", ident: id, policy: policy, created: s.now(), apiKey: key,
		annotations: map[string]annotation{}, permits: map[string]map[string]string{}}
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "annotations["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			host.annotations[strings.TrimSuffix(name, "]")] = annotation{value: v[len(v)-1], policy: policy}
		}
	}
	s.st.resources[full] = host
	s.st.setOwner(host, factory)
	for layer, e := range s.st.memberOf[factory] {
		if kindOf(layer) == "layer" && !e.ownership {
			s.st.addEdge(full, layer, edge{policy: policy})
		}
	}
	s.st.invalidate()
	s.saveLocked()
	return host, key, nil
}

// clientIP is Conjur's request.ip (Rack with Conjur's IsIpTrusted):
// 127.0.0.1 and ::1 are trusted proxies, so from them the last
// untrusted address of X-Forwarded-For is the client.
func clientIP(r *http.Request) string {
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	trusted := func(ip string) bool { return ip == "127.0.0.1" || ip == "::1" }
	if !trusted(remote) {
		return remote
	}
	var fwd []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, ip := range strings.Split(h, ",") {
			if ip = strings.TrimSpace(ip); ip != "" {
				fwd = append(fwd, ip)
			}
		}
	}
	for i := len(fwd) - 1; i >= 0; i-- {
		if !trusted(fwd[i]) {
			return fwd[i]
		}
	}
	if len(fwd) > 0 {
		return fwd[0]
	}
	return remote
}
