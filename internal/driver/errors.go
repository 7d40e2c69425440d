package driver

import (
	"fmt"
	"strings"

	"github.com/cyberark/conjur-swarm/internal/conjur"
)

// Code is the stable error code carried in an answer's Err as "[CODE]", in
// the audit log and in the status endpoint's recent decisions. It is the
// Conjur client's Code type: its codes (NO_CREDENTIAL, AUTH_REFUSED,
// CREDENTIAL_REJECTED, FORBIDDEN, NOT_FOUND, UNAVAILABLE, TIMEOUT, TLS,
// VALUE_UNUSABLE, BAD_REQUEST, CANCELED, INTERNAL) pass through unchanged,
// and the driver adds its own below.
type Code = conjur.Code

// The driver's own codes, and the client's that the driver also returns.
const (
	// CodeBadRequest: the GetSecret body could not be decoded or failed
	// validation (a Docker version the driver does not understand, or a
	// caller other than Docker).
	CodeBadRequest = conjur.CodeBadRequest
	// CodeDenied: the mapping policy matched no rule, or the matching rule's
	// allow conditions failed, or the resolved variable id was unsafe.
	CodeDenied Code = "DENIED"
	// CodeValueUnusable: Conjur returned a value Swarm cannot use (empty, or
	// 500 KiB or more).
	CodeValueUnusable = conjur.CodeValueUnusable
	// CodeNotConfigured: the plugin's Conjur settings are missing or invalid,
	// so nothing can be fetched until they are set.
	CodeNotConfigured Code = "NOT_CONFIGURED"
	// CodeUnavailable: every appliance URL failed (passed on from the
	// Conjur client).
	CodeUnavailable = conjur.CodeUnavailable
	// CodeInternal: anything unexpected; the log has the cause.
	CodeInternal = conjur.CodeInternal
)

// MaxValueBytes is the largest value Swarm accepts, exclusive: a value must
// be 1 byte to MaxValueBytes-1 bytes.
const MaxValueBytes = 500 * 1024

// errText formats the Err an answer carries:
//
//	conjur-swarm [CODE] secret "S" (variable "V", rule "R"): what failed; what to do
func errText(code Code, secret, variable, rule, msg string) string {
	var ctx []string
	if variable != "" {
		ctx = append(ctx, fmt.Sprintf("variable %q", variable))
	}
	if rule != "" {
		ctx = append(ctx, fmt.Sprintf("rule %q", rule))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "conjur-swarm [%s] secret %q", code, secret)
	if len(ctx) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(ctx, ", "))
	}
	b.WriteString(": ")
	b.WriteString(msg)
	return b.String()
}

// conjurAdvice is what to do for each Conjur failure code, used when the
// Conjur client's own message is empty.
var conjurAdvice = map[Code]string{
	"NO_CREDENTIAL":       "the plugin has no Conjur credential yet; run the bootstrap agent or set CONJUR_SWARM_CREDENTIAL_FILE, then check `conjur-swarm status`",
	"AUTH_REFUSED":        "Conjur refused the plugin's credential (401); hand over a current API key for CONJUR_AUTHN_LOGIN",
	"CREDENTIAL_REJECTED": "the plugin's credential cannot be used; hand over a credential for the login set in CONJUR_AUTHN_LOGIN",
	"FORBIDDEN":           "the plugin's host may see the variable but lacks execute on it; permit execute in the Conjur policy",
	"NOT_FOUND":           "the variable is missing, has no value, or is not visible to the plugin's host; check the id and the Conjur policy",
	"UNAVAILABLE":         "no Conjur appliance URL answered; check CONJUR_APPLIANCE_URL and the network from this manager",
	"TIMEOUT":             "Conjur did not answer within CONJUR_SWARM_FETCH_TIMEOUT; check Conjur's load and the network",
	"TLS":                 "Conjur's certificate could not be verified; set CONJUR_CERT_FILE (via the `ca` mount) to the CA that signed it",
	"VALUE_UNUSABLE":      "Conjur returned a value that cannot be used as returned",
	"BAD_REQUEST":         "Conjur rejected the request as malformed; check the variable id the mapping produced",
	"CANCELED":            "the request was cancelled before Conjur answered (the plugin is stopping or Docker gave up); Swarm retries the task",
}
