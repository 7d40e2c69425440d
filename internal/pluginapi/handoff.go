package pluginapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/cyberark/conjur-swarm/internal/credential"
)

// Handoff is the bootstrap credential document: a credential and the Conjur
// it belongs to. The bootstrap agent hands it only to a plugin whose status
// reports that login, that account and one of those URLs; the plugin's
// handoff endpoint refuses it unless the account and a URL match its own
// settings.
type Handoff struct {
	Credential credential.Credential
	// Account is the Conjur account the credential belongs to (the
	// plugin's CONJUR_ACCOUNT).
	Account string
	// ApplianceURLs are the Conjur URLs the credential may be sent to: the
	// plugin must have at least one of them in CONJUR_APPLIANCE_URL.
	ApplianceURLs []string
}

// The documents an operator writes, shown by every refusal of an
// incomplete one. No value in them is real.
const (
	handoffAPIKeyForm = `{"login":"host/swarm/conjur-plugin","api_key":"<API key>","account":"<CONJUR_ACCOUNT>","appliance_url":"<CONJUR_APPLIANCE_URL>"}`
	handoffJWTForm    = `{"jwt":"<JWT>","account":"<CONJUR_ACCOUNT>","appliance_url":"<CONJUR_APPLIANCE_URL>"}`
)

// ParseHandoff reads a bootstrap credential document:
//
//	{"login": "host/...", "api_key": "...", "account": "myorg", "appliance_url": "https://conjur.example.com"}
//	{"jwt": "...", "account": "myorg", "appliance_url": "https://a.example.com,https://b.example.com"}
//
// appliance_url may be a comma-separated list, as CONJUR_APPLIANCE_URL.
// A document without account or appliance_url is refused: it does not say
// which Conjur the key may be sent to. Errors never echo the input.
func ParseHandoff(data []byte) (Handoff, error) {
	cred, err := credential.Parse(data)
	if err != nil {
		return Handoff{}, err
	}
	// ParseCredential has checked that the document is one object whose
	// account and appliance_url, when present, are strings.
	var dest struct {
		Account      string `json:"account"`
		ApplianceURL string `json:"appliance_url"`
	}
	if err := json.Unmarshal(data, &dest); err != nil {
		return Handoff{}, errors.New("credential account or appliance_url is not a string")
	}
	h := Handoff{Credential: cred, Account: strings.TrimSpace(dest.Account)}
	for _, raw := range strings.Split(dest.ApplianceURL, ",") {
		if raw = strings.TrimSpace(raw); raw != "" {
			h.ApplianceURLs = append(h.ApplianceURLs, raw)
		}
	}

	form := handoffAPIKeyForm
	if cred.JWT != "" {
		form = handoffJWTForm
	}
	var missing []string
	if h.Account == "" {
		missing = append(missing, `"account"`)
	}
	if len(h.ApplianceURLs) == 0 {
		missing = append(missing, `"appliance_url"`)
	}
	if len(missing) > 0 {
		return Handoff{}, fmt.Errorf("credential does not say which Conjur it belongs to (no %s): write the bootstrap secret as %s, with the plugin's CONJUR_ACCOUNT and CONJUR_APPLIANCE_URL",
			strings.Join(missing, " and no "), form)
	}
	var errs []error
	if strings.ContainsAny(h.Account, ":/") || strings.IndexFunc(h.Account, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		errs = append(errs, errors.New("credential account contains ':', '/', whitespace or control characters: give the bare account name, as CONJUR_ACCOUNT"))
	}
	for i, raw := range h.ApplianceURLs {
		if credential.CanonicalURL(raw) == "" {
			errs = append(errs, fmt.Errorf("credential appliance_url entry %d is not an http(s) URL with a host and no query: give the plugin's CONJUR_APPLIANCE_URL", i+1))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Handoff{}, err
	}
	h.Credential.ApplianceURLs = h.ApplianceURLs // the plugin sends it to these URLs only
	return h, nil
}

// LoginMismatch says why a plugin pinned to login cannot take this handoff,
// or "" when it can. A JWT names no login (the plugin holds it to its pinned
// login when it authenticates), so only the API key form is checked here.
func (h Handoff) LoginMismatch(login string) string {
	switch {
	case h.Credential.JWT != "":
		return ""
	case login == "":
		return fmt.Sprintf("the plugin reports no pinned login, the credential is for %q", h.Credential.Login)
	case login != h.Credential.Login:
		return fmt.Sprintf("the plugin is pinned to login %q, the credential is for %q", Clip(login), h.Credential.Login)
	}
	return ""
}

// ConjurMismatch says why a plugin set for account and urls is not where
// this handoff belongs, or "" when it is: the same account and at least one
// URL in common. Anything the plugin does not report is a mismatch.
func (h Handoff) ConjurMismatch(account string, urls []string) string {
	switch {
	case account == "":
		return fmt.Sprintf("the plugin reports no Conjur account, the credential is for account %q", h.Account)
	case account != h.Account:
		return fmt.Sprintf("the plugin is set for Conjur account %q, the credential for account %q", Clip(account), h.Account)
	case !sharesURL(urls, h.ApplianceURLs):
		return fmt.Sprintf("the plugin's Conjur URLs (%s) have none in common with the credential's appliance_url (%s)",
			quoteList(urls), quoteList(h.ApplianceURLs))
	}
	return ""
}

// quoteList renders at most a few URLs, each quoted and clipped.
func quoteList(urls []string) string {
	const most = 5
	if len(urls) == 0 {
		return "none"
	}
	var parts []string
	for i, u := range urls {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(urls)-most))
			break
		}
		parts = append(parts, fmt.Sprintf("%q", Clip(u)))
	}
	return strings.Join(parts, ", ")
}

// sharesURL reports whether two lists of appliance URLs name at least one
// appliance in common, comparing canonical forms (scheme and host in lower
// case, no default port, no trailing slash).
func sharesURL(a, b []string) bool {
	set := make(map[string]bool, len(a))
	for _, u := range a {
		if c := credential.CanonicalURL(u); c != "" {
			set[c] = true
		}
	}
	for _, u := range b {
		if c := credential.CanonicalURL(u); c != "" && set[c] {
			return true
		}
	}
	return false
}
