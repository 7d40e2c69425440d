package driver

import (
	"fmt"
	"strings"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// MaxValueBytes is the largest value Swarm accepts, exclusive: a value must
// be 1 byte to MaxValueBytes-1 bytes.
const MaxValueBytes = 500 * 1024

// errText formats the Err an answer carries:
//
//	conjur-swarm [CODE] secret "S" (variable "V", rule "R"): what failed; what to do
func errText(code errcode.Code, secret, variable, rule, msg string) string {
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
