// Package errcode is the one list of the stable error codes: each code's
// text, its class (which decides how every part of the product treats it),
// when it is returned and what the operator should do. The Conjur client
// returns the codes about Conjur; the driver adds DENIED and NOT_CONFIGURED;
// the rollout agent has codes of its own. Answers carry a code as "[CODE]";
// the audit log, the metrics and `conjur-swarm status` carry it too; and the
// error code table of docs/troubleshooting.md is rendered from this list
// (TestTroubleshootingTable keeps it so).
//
// To add a code: add its constant and its entry in catalog (with its
// class), then run `go test ./internal/errcode -run TestTroubleshootingTable -update`.
package errcode

import (
	"fmt"
	"net/http"
	"strings"
)

// Code is a stable, machine-readable kind of failure. Its text never changes.
type Code string

// The codes, in the order of docs/troubleshooting.md. catalog says when each
// is returned and what to do.
const (
	Denied             Code = "DENIED"
	NotFound           Code = "NOT_FOUND"
	Forbidden          Code = "FORBIDDEN"
	NoCredential       Code = "NO_CREDENTIAL"
	AuthRefused        Code = "AUTH_REFUSED"
	CredentialRejected Code = "CREDENTIAL_REJECTED"
	Unavailable        Code = "UNAVAILABLE"
	Timeout            Code = "TIMEOUT"
	TLS                Code = "TLS"
	ValueUnusable      Code = "VALUE_UNUSABLE"
	MappingInvalid     Code = "MAPPING_INVALID"
	NotConfigured      Code = "NOT_CONFIGURED"
	BadRequest         Code = "BAD_REQUEST"
	Canceled           Code = "CANCELED"
	Internal           Code = "INTERNAL"
)

// The rollout agent's own codes (its status and log lines; never a
// plugin's answer).
const (
	DockerUnavailable Code = "DOCKER_UNAVAILABLE"
	UpdateFailed      Code = "UPDATE_FAILED"
	UpdatePaused      Code = "UPDATE_PAUSED"
	NodeDependent     Code = "NODE_DEPENDENT"
	PinnedVersion     Code = "PINNED_VERSION"
	OtherAccount      Code = "OTHER_ACCOUNT"
	NotVisible        Code = "NOT_VISIBLE"
)

// Class is what kind of failure a code is. The behaviour that depends on
// the kind is decided here once: whether a stale_if_error rule may answer
// with a last good value (MayServeStale), whether the bootstrap agent
// offers a refused credential again at its normal interval (Transient),
// and the HTTP status of a refused handoff (HandoffStatus).
type Class int

// The classes.
const (
	// Unreachable: Conjur could not be reached or did not answer in
	// time. A stale value may answer; the agent retries; a handoff 502.
	Unreachable Class = iota + 1
	// Unverified: Conjur's certificate could not be verified. No stale
	// value (the answer might not be Conjur's); the agent retries (a CA
	// being fixed); a handoff 502.
	Unverified
	// Refused: Conjur or the mapping policy answered no. The agent backs
	// off; a handoff 403.
	Refused
	// Unusable: the request, the credential or the value cannot be used as
	// given. The agent backs off; a handoff 400.
	Unusable
	// Configuration: a setting or a file must be fixed first. The agent
	// retries; a handoff 503.
	Configuration
	// Failure: anything else (cancelled, unexpected). A handoff 500.
	Failure
)

// Scope says who returns a code.
type scope int

const (
	plugin       scope = iota // the plugin's answers (docs/troubleshooting.md's table)
	rolloutAgent              // the rollout agent's status and log (docs/rotation.md)
)

// entry is one code's documentation: what failed, in a few plain words, when
// it is returned (for operators, Markdown) and the fix: what to do, as plain
// text that an answer's Err carries after what failed.
type entry struct {
	code    Code
	class   Class
	scope   scope
	summary string
	when    string
	fix     string
}

var catalog = []entry{
	{Denied, Refused, plugin, "the mapping policy denied the request",
		"The mapping policy refused: no rule matched, the matching rule's `allow` failed (wrong stack, image, ...), or the variable id it produced was unsafe or outside `within`. The Err names the rule and the condition; fix the secret's labels, the service, or the mapping file.",
		"test the request with `conjur-swarm policy explain`"},
	{NotFound, Refused, plugin, "the variable is missing, has no value, or is not visible to the plugin's host",
		"Conjur answered 404: the variable does not exist, has no value yet, or the plugin's host has no privilege on it at all.",
		"check the variable id in the Err, set a value, and permit read and execute on it to the plugin's host (see conjur.md)"},
	{Forbidden, Refused, plugin, "the plugin's host may see the variable but lacks execute on it",
		"Conjur answered 403: the plugin's host can see the variable but lacks `execute`.",
		"permit execute on the variable to the plugin's host (or its group) in the Conjur policy"},
	{NoCredential, Configuration, plugin, "the plugin has no Conjur credential yet",
		"The plugin has no Conjur credential yet (after every plugin start when it relies on the handoff, until the agent hands it over). When the last credential handed over was refused, the answer says so (`the last credential handed over (fingerprint F, at T) was refused [CODE]: ...`) and that code (`AUTH_REFUSED`, `TLS`, `UNAVAILABLE`, ...) is the real cause: fix what it names.",
		"run the bootstrap agent (check it with `docker service ps conjur-bootstrap-agent` and `docker service logs conjur-bootstrap-agent`) or set CONJUR_SWARM_CREDENTIAL_FILE, then check `conjur-swarm status`"},
	{AuthRefused, Refused, plugin, "Conjur refused the plugin's credential (401)",
		"Conjur refused the plugin's credential (401), e.g. after the key was rotated.",
		"hand over the current API key of CONJUR_AUTHN_LOGIN (a new conjur-bootstrap secret: conjur.md, Rotating the key) or rewrite the credential file"},
	{CredentialRejected, Unusable, plugin, "the plugin's credential cannot be used",
		"The credential is for another login than `CONJUR_AUTHN_LOGIN`, or cannot be read.",
		"hand over the credential of the login set in CONJUR_AUTHN_LOGIN, or fix the credential file"},
	{Unavailable, Unreachable, plugin, "no Conjur appliance URL answered",
		"No appliance URL answered (connection refused, 5xx, a follower refusing), or the plugin was stopping.",
		"check CONJUR_APPLIANCE_URL and the network from this manager (`conjur-swarm status` shows each URL's health)"},
	{Timeout, Unreachable, plugin, "Conjur did not answer within CONJUR_SWARM_FETCH_TIMEOUT",
		"Conjur did not answer within `CONJUR_SWARM_FETCH_TIMEOUT`.",
		"check Conjur's load and the network; raise CONJUR_SWARM_FETCH_TIMEOUT (below 30s) only if Conjur is known to be slow"},
	{TLS, Unverified, plugin, "Conjur's certificate could not be verified",
		"Conjur's certificate could not be verified.",
		"put the CA that signed Conjur's certificate in the `ca` directory and set CONJUR_CERT_FILE to it"},
	{ValueUnusable, Unusable, plugin, "Conjur returned a value that cannot be used as returned",
		"Conjur returned an empty value, or one of 500 KiB or more (Swarm accepts 1 byte to under 500 KiB), or one that could not be decoded; or the rule's field, decode or bundle could not use it (not a JSON object or no such field, not base64, binary in a text bundle format, a bundle template that failed, a rendered bundle out of Swarm's size limits). The Err names the bundle member and what was wrong, never the value.",
		"store a value of 1 byte to under 500 KiB, in the form the rule expects (check field, decode and the bundle format in docs/mapping.md)"},
	{MappingInvalid, Configuration, plugin, "the mapping file is invalid and no policy is in force",
		"The mapping file was missing, unreadable or invalid when the plugin started, and no good version has been read since: no policy is in force, so every secret is refused. The Err names the file and its first problem; `conjur-swarm status` lists every problem. The plugin adopts the fixed file within about two seconds, with no restart.",
		"fix the mapping file (`conjur-swarm policy validate FILE` lists every problem); the plugin adopts it as soon as it is good"},
	{NotConfigured, Configuration, plugin, "the plugin's Conjur settings are missing or invalid",
		"Conjur's settings are missing or invalid (the Err lists each problem), or the mapping file names another account than `CONJUR_ACCOUNT`.",
		"set the plugin's Conjur settings (docker plugin disable, docker plugin set, docker plugin enable) and check `conjur-swarm status`"},
	{BadRequest, Unusable, plugin, "the request was rejected as malformed",
		"The request could not be read (not Docker, or a Docker version the plugin does not understand), or Conjur rejected the request as malformed.",
		"check the variable id the mapping produced; if the request itself could not be read, report it with the plugin's log line"},
	{Canceled, Failure, plugin, "the request was cancelled before Conjur answered (the plugin is stopping or Docker gave up)",
		"The request was cancelled before Conjur answered (Docker gave up, or the plugin is stopping).",
		"nothing: Swarm retries the task; look for TIMEOUT or UNAVAILABLE around it in the plugin's log"},
	{Internal, Failure, plugin, "an unexpected error occurred",
		"Anything unexpected.",
		"read the cause in the plugin's log line, and report it"},

	{DockerUnavailable, Unreachable, rolloutAgent, "the Docker Engine did not list the services or secrets",
		"The rollout agent could not list the services or secrets: the pass is skipped and retried at the next interval.",
		"check the agent's Docker socket mount and that the node is a manager"},
	{UpdateFailed, Failure, rolloutAgent, "the Docker Engine refused a forced update",
		"The engine refused the rollout's forced update of a service; the agent retries at the next pass.",
		"read the engine's error in the agent's log line and fix the service (docker service inspect)"},
	{UpdatePaused, Configuration, rolloutAgent, "the service's last update is paused",
		"A rollout is due but the service's last update is paused; the agent waits for the operator.",
		"resolve the paused update with docker service update or docker service rollback; the agent then rolls it out"},
	{NodeDependent, Configuration, rolloutAgent, "the secret's rule reads the node",
		"A secret's rule reads the node, so its variable is not known per service: the secret is not watched.",
		"roll the service by hand after a rotation, or map the secret without the node"},
	{PinnedVersion, Configuration, rolloutAgent, "the rule pins a version",
		"The rule pins a variable's version: a rotation does not change what the tasks get, so it is not watched.",
		"nothing, or drop the version from the rule to follow rotations"},
	{OtherAccount, Configuration, rolloutAgent, "the mapping names another Conjur account than the agent's",
		"The mapping names another Conjur account than the agent's (the plugin refuses it too): the secret is not watched.",
		"make the mapping file's account match CONJUR_ACCOUNT"},
	{NotVisible, Refused, rolloutAgent, "the agent's identity cannot see the variable",
		"The agent's identity cannot see the variable, or it has no value yet: it is not watched.",
		"grant the agent's identity read on the variable (not execute), or set a value"},
}

// lookup returns c's entry, or false for a code not in the catalogue.
func lookup(c Code) (entry, bool) {
	for _, e := range catalog {
		if e.code == c {
			return e, true
		}
	}
	return entry{}, false
}

// Class is c's class; Failure for a code not in the catalogue.
func (c Code) Class() Class {
	if e, ok := lookup(c); ok {
		return e.class
	}
	return Failure
}

// MayServeStale reports whether a fetch that failed with c may be answered
// with a last good value (a stale_if_error rule): only when Conjur could
// not be reached or did not answer in time, never on an answer of Conjur
// (a refusal, a missing variable, a rejected credential) nor on a TLS or
// value problem.
func (c Code) MayServeStale() bool { return c.Class() == Unreachable }

// Transient reports whether a refusal of c says nothing about the
// credential (Conjur could not be reached or verified, or the plugin is not
// configured yet): the bootstrap agent offers it again at its normal
// interval rather than backing off.
func (c Code) Transient() bool {
	switch c.Class() {
	case Unreachable, Unverified, Configuration:
		return true
	}
	return false
}

// HandoffStatus is the HTTP status of a handoff refused with c.
func (c Code) HandoffStatus() int {
	switch c.Class() {
	case Unreachable, Unverified:
		return http.StatusBadGateway
	case Refused:
		return http.StatusForbidden
	case Unusable:
		return http.StatusBadRequest
	case Configuration:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Fix is what the operator should do about c, as plain text; "" for a code
// not in the catalogue.
func (c Code) Fix() string {
	e, _ := lookup(c)
	return e.fix
}

// Message is what failed and what to do, for an answer about c that has no
// more precise message.
func (c Code) Message() string {
	if e, ok := lookup(c); ok {
		return e.summary + "; " + e.fix
	}
	return "the request failed with " + string(c) + "; see the plugin's log"
}

// All returns every code a plugin answers with, in the order of the
// documentation.
func All() []Code { return codes(plugin) }

// RolloutAgent returns the rollout agent's own codes.
func RolloutAgent() []Code { return codes(rolloutAgent) }

func codes(sc scope) []Code {
	var out []Code
	for _, e := range catalog {
		if e.scope == sc {
			out = append(out, e.code)
		}
	}
	return out
}

// Table renders the Markdown table of docs/troubleshooting.md.
func Table() string {
	var b strings.Builder
	b.WriteString("| Code | What happened | What to do |\n| --- | --- | --- |\n")
	for _, e := range catalog {
		if e.scope != plugin {
			continue
		}
		fix := strings.ToUpper(e.fix[:1]) + e.fix[1:] + "."
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", e.code, e.when, fix)
	}
	return b.String()
}
