package policy

import "strings"

// StackLabelMismatch returns the secret's stack label (the label docker
// stack deploy sets) when the secret's name does not start with
// "<label>_", and "" otherwise (no label, or a name of that stack). A
// stack's own secrets are always named so; a mismatch means a stack file
// named another stack's secret (`name:` under `secrets:`) and its deploy
// relabelled that secret into its own stack, or someone set the label by
// hand. Rules that read the owner from the label ({stack}, {secret_key})
// then refuse the owner's tasks; see `conjur-swarm status`.
func StackLabelMismatch(secretName string, secretLabels map[string]string) string {
	stack := secretLabels[stackLabel]
	if stack == "" || strings.HasPrefix(secretName, stack+"_") {
		return ""
	}
	return stack
}
