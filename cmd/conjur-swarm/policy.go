package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cyberark/conjur-swarm/internal/policy"
)

// newPolicyCmd groups the mapping policy tools: validate and explain.
func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate the mapping policy file and explain its decisions",
		Long: `Tools for the mapping policy: the YAML file that decides which Conjur variable
a swarm secret stands for and which tasks may have it (see docs/mapping.md).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q: want validate or explain", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newPolicyValidateCmd(), newPolicyExplainCmd())
	return cmd
}

func newPolicyValidateCmd() *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate [--strict] FILE...",
		Short: "Check mapping files; print every problem as FILE:LINE:COL: message",
		Long: `Check one or more mapping policy files.

A good file prints one line on stdout ("FILE: ok, N rules (...), sha256:...").
A broken file prints every problem on stderr as FILE:LINE:COL: message.
Warnings (FILE:LINE:COL: warning: message, on stderr) flag a valid rule that
lets anyone who can create a swarm secret choose the variable: it takes the
variable from the secret and has no allow condition on the service side.
The exit status is 0 when every file is good (warnings or not), 1 otherwise;
with --strict a warning counts as a problem.`,
		Example: "  conjur-swarm policy validate --strict docs/examples/mapping.yml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := false
			for _, file := range args {
				p, err := policy.ParseFile(file)
				if err != nil {
					failed = true
					printPolicyError(cmd.ErrOrStderr(), err)
					continue
				}
				warnings := p.Warnings()
				for _, w := range warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), w.String())
				}
				if strict && len(warnings) > 0 {
					failed = true
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d %s, which --strict counts as problems\n", file, len(warnings), plural(len(warnings), "warning", "warnings"))
					continue
				}
				rules := p.Rules()
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok, %d %s (%s), %s\n",
					file, len(rules), plural(len(rules), "rule", "rules"), strings.Join(rules, ", "), p.Hash())
				if ids := identityLine(p.Identities()); ids != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: identity: %s\n", file, ids)
				}
			}
			if failed {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as problems (exit 1)")
	return cmd
}

// printPolicyError prints Problems one per line, other errors as one line.
func printPolicyError(w io.Writer, err error) {
	var ps policy.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(w, p.String())
		}
		return
	}
	fmt.Fprintln(w, err)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// explainOutput is the JSON form of `policy explain -o json`.
type explainOutput struct {
	Decision string `json:"decision"` // "allow" or "deny"
	Rule     string `json:"rule"`
	Variable string `json:"variable"`
	Account  string `json:"account"`
	// Identity is the Conjur host (below identity-path) the Get is made as
	// in the per-request identity mode; omitted when the mapping sets none.
	Identity   string `json:"identity,omitempty"`
	Version    int    `json:"version"`
	DoNotReuse bool   `json:"do_not_reuse"`
	Condition  string `json:"condition"`
	Reason     string `json:"reason"`
	Policy     string `json:"policy"`      // the file, or "builtin"
	PolicyHash string `json:"policy_hash"` // "sha256:..." or "builtin"
	// Field and Decode shape a single variable's value.
	Field  string `json:"field,omitempty"`
	Decode string `json:"decode,omitempty"`
	// Format and Members describe a bundle (Variable is then empty).
	Format  string          `json:"format,omitempty"`
	Members []explainMember `json:"members,omitempty"`
	// Warnings are the policy's warnings (see policy validate).
	Warnings []string `json:"warnings,omitempty"`
}

// explainMember is one bundle member in `policy explain` output.
type explainMember struct {
	Name     string `json:"name"`
	Variable string `json:"variable"`
	Version  int    `json:"version"`
	Field    string `json:"field,omitempty"`
	Decode   string `json:"decode,omitempty"`
}

func newPolicyExplainCmd() *cobra.Command {
	var (
		file, output                string
		req                         policy.Request
		secretLabels, serviceLabels []string
	)
	cmd := &cobra.Command{
		Use:   "explain [-f FILE] --secret NAME [flags]",
		Short: "Show which rule decides a request, the variable, and allow or deny with the reason",
		Long: `Resolve one request the way the plugin does, without calling Conjur: which rule
matched, the Conjur variable id, the version, allow or deny, and why.

Without -f the built-in policy is used (the single conjur.variable label rule).
The exit status is 0 for allow, 3 for deny, 1 when the file is broken or a flag is wrong.`,
		Example: `  conjur-swarm policy explain -f docs/examples/mapping.yml \
    --secret web_db_password --secret-label com.docker.stack.namespace=web \
    --service web_api --service-label com.docker.stack.namespace=web`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			var err error
			if req.SecretLabels, err = parseLabelFlags("--secret-label", secretLabels); err != nil {
				return err
			}
			if req.ServiceLabels, err = parseLabelFlags("--service-label", serviceLabels); err != nil {
				return err
			}
			p := policy.Builtin()
			if file != "" {
				if p, err = policy.ParseFile(file); err != nil {
					printPolicyError(cmd.ErrOrStderr(), err)
					return exitError{code: 1}
				}
			}
			d := p.Resolve(req)
			out := explainOutput{
				Decision: "deny", Rule: d.Rule, Variable: d.Variable, Account: d.Account, Version: d.Version,
				Identity: d.Identity, DoNotReuse: d.DoNotReuse, Condition: d.Condition, Reason: d.Reason,
				Policy: p.File(), PolicyHash: p.Hash(), Warnings: p.Warnings().Strings(),
			}
			if d.Allow {
				out.Decision = "allow"
			}
			out.Field, out.Decode = d.Field, d.Decode
			if d.Bundle != nil {
				out.Format = d.Bundle.Format
				for _, m := range d.Bundle.Members {
					out.Members = append(out.Members, explainMember(m))
				}
			}
			if output == "json" {
				err = writeExplainJSON(cmd.OutOrStdout(), out)
			} else {
				err = writeExplainText(cmd.OutOrStdout(), out)
			}
			if err != nil {
				return err
			}
			if !d.Allow {
				return exitError{code: 3}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "mapping policy file (default: the built-in policy)")
	f.StringVar(&req.SecretName, "secret", "", "secret name, as Swarm sends it (a stack's secrets are named STACK_KEY)")
	f.StringArrayVar(&secretLabels, "secret-label", nil, "secret label KEY=VALUE (repeatable)")
	f.StringVar(&req.ServiceName, "service", "", "service name")
	f.StringArrayVar(&serviceLabels, "service-label", nil, "service label KEY=VALUE (repeatable)")
	f.StringVar(&req.Image, "image", "", "task image")
	f.StringVar(&req.NodeID, "node", "", "node id")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.MarkFlagRequired("secret")
	return cmd
}

// parseLabelFlags turns repeated KEY=VALUE flags into a map. Values may hold
// "=" and ","; a key given twice is an error.
func parseLabelFlags(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%s: label %q given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

func writeExplainJSON(w io.Writer, out explainOutput) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeExplainText(w io.Writer, out explainOutput) error {
	orNone := func(s, none string) string {
		if s == "" {
			return none
		}
		return s
	}
	version := "latest"
	if out.Version > 0 {
		version = strconv.Itoa(out.Version)
	}
	policyLine := out.PolicyHash
	if out.Policy != "builtin" {
		policyLine = out.Policy + " (" + out.PolicyHash + ")"
	}
	rows := [][2]string{
		{"decision", out.Decision},
		{"rule", orNone(out.Rule, "(none matched)")},
	}
	if out.Format != "" {
		rows = append(rows, [2]string{"bundle", fmt.Sprintf("%s, %d %s", out.Format, len(out.Members), plural(len(out.Members), "member", "members"))})
		rows = append(rows, bundleRows(out.Members)...)
	} else if strings.HasPrefix(out.Condition, "bundle.variables[") {
		// A member denied before the bundle was resolved.
		rows = append(rows, [2]string{"bundle", "(not resolved: a member is denied, see condition)"})
	} else {
		rows = append(rows, [2]string{"variable", orNone(out.Variable, "(none)")}, [2]string{"version", version})
		if out.Field != "" {
			rows = append(rows, [2]string{"field", out.Field})
		}
		if out.Decode != "" {
			rows = append(rows, [2]string{"decode", out.Decode})
		}
	}
	rows = append(rows,
		[2]string{"account", orNone(out.Account, "(the plugin's CONJUR_ACCOUNT)")})
	if out.Identity != "" {
		rows = append(rows, [2]string{"identity", out.Identity})
	}
	rows = append(rows, [2]string{"do_not_reuse", strconv.FormatBool(out.DoNotReuse)})
	if out.Condition != "" {
		rows = append(rows, [2]string{"condition", out.Condition})
	}
	rows = append(rows, [2]string{"reason", out.Reason}, [2]string{"policy", policyLine})
	for _, w := range out.Warnings {
		rows = append(rows, [2]string{"warning", w})
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-13s %s\n", r[0]+":", r[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// bundleRows lists each member as "member NAME: ID (version, field, decode)",
// names aligned.
func bundleRows(ms []explainMember) [][2]string {
	width := 0
	for _, m := range ms {
		width = max(width, len(m.Name))
	}
	rows := make([][2]string, len(ms))
	for i, m := range ms {
		detail := []string{"latest"}
		if m.Version > 0 {
			detail[0] = "version " + strconv.Itoa(m.Version)
		}
		if m.Field != "" {
			detail = append(detail, "field "+m.Field)
		}
		if m.Decode != "" {
			detail = append(detail, "decode "+m.Decode)
		}
		rows[i] = [2]string{"  member", fmt.Sprintf("%-*s  %s (%s)", width, m.Name, m.Variable, strings.Join(detail, ", "))}
	}
	return rows
}

// identityLine lists each rule's identity template for policy validate,
// "rule=TEMPLATE", "(default)" after one taken from the file's top-level
// identity and "(none)" for a rule without one; "" when the file sets none.
func identityLine(ids []policy.RuleIdentity) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case id.Identity == "":
			parts[i] = id.Rule + "=(none)"
		case id.Default:
			parts[i] = id.Rule + "=" + id.Identity + " (default)"
		default:
			parts[i] = id.Rule + "=" + id.Identity
		}
	}
	return strings.Join(parts, ", ")
}
