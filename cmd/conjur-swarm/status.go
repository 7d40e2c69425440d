package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cyberark/conjur-swarm/internal/audit"
	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

func newStatusCmd() *cobra.Command {
	var socket, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status --socket PATH [-o json]",
		Short: "Show a running plugin's health: credential, Conjur contact, mapping file, recent decisions",
		Long: `Ask the plugin for its status (POST /ConjurSwarm.Status): whether it has a
credential (fingerprint only), the last Conjur contact and error, each
appliance URL's health, the mapping file in force, counters and the most
recent decisions. No value and no key is ever shown.

When ` + "`docker service ps`" + ` says "secret not found", run this on the leader
manager: the plugin's reason is in the recent decisions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: want table or json", output)
			}
			sock, err := pluginSocket(cmd, socket)
			if err != nil {
				return err
			}
			st, err := pluginapi.NewClient(sock, timeout).Status(cmd.Context())
			if err != nil {
				return unreachable(err)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return writeStatus(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", defaultSocket, "the plugin's unix socket (default: this one if it exists, else the only one under /run/docker/plugins/*/)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	return cmd
}

// writeStatus prints the status for a terminal.
func writeStatus(w io.Writer, st pluginapi.Status) error {
	if warn := handoffWarning(st); warn != "" {
		fmt.Fprintln(w, warn)
	}
	writeStackMismatches(w, st)
	sp := statusPrinter{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0), now: st.Now}
	version := st.Version
	if version == "" {
		version = "unknown"
	}
	sp.p("Plugin\tconjur-swarm %s, started %s", version, sp.when(st.StartedAt))
	if !st.Configured {
		sp.p("Conjur\tNOT CONFIGURED: %s", st.ConfigProblem)
	}
	if c := st.Conjur; c != nil {
		if st.Configured {
			sp.p("Conjur\tconfigured")
		}
		sp.conjur(c, st.LastHandoff)
	}
	if m := st.Mapping; m != nil {
		sp.mapping(m)
	}
	sp.staleRules(st.StaleIfError)
	c := st.Counters
	stale := ""
	if c.Stale > 0 {
		stale = fmt.Sprintf(" (%d of them stale: last good values served while Conjur was unavailable)", c.Stale)
	}
	sp.p("Requests\t%d total: %d allowed%s, %d denied, %d failed%s", c.Requests, c.Allowed, stale, c.Denied, c.Errors, byCode(c.ByCode))
	if err := sp.tw.Flush(); err != nil {
		return err
	}
	return writeRecent(w, st.Recent)
}

// statusPrinter writes the summary lines of writeStatus, aligned, with
// times relative to now.
type statusPrinter struct {
	tw  *tabwriter.Writer
	now time.Time
}

func (sp statusPrinter) p(format string, args ...any) { fmt.Fprintf(sp.tw, format+"\n", args...) }

func (sp statusPrinter) when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), ago(sp.now, t))
}

// conjur writes the Conjur section: identity, credential, last handoff,
// token, last contact and error, and each URL's health.
func (sp statusPrinter) conjur(c *pluginapi.ConjurState, h *pluginapi.HandoffState) {
	sp.p("  login\t%s", orDash(c.Login))
	sp.p("  account\t%s", orDash(c.Account))
	switch {
	case c.CredentialSource == "per-request":
		sp.p("  credential\tper-request: a JWT this manager signs for each identity the mapping chooses; %d identities hold a token", c.Identities)
		sp.p("  signing\tissuer %s, key %s (conjur-swarm jwks prints it for Conjur's public-keys)", orDash(c.SigningIssuer), orDash(c.SigningKeyID))
	case c.CredentialSource == conjur.AuthnCert:
		sp.p("  credential\tcert: this node's swarm certificate, read at each login; in use since %s", sp.when(c.CredentialSetAt))
	case c.CredentialSource == conjur.AuthnIAM:
		sp.p("  credential\tiam: AWS credentials (the instance role's, or the environment's) signing each login; in use since %s", sp.when(c.CredentialSetAt))
	case c.CredentialSource == conjur.AuthnAzure || c.CredentialSource == conjur.AuthnGCP:
		sp.p("  credential\t%s: the VM's identity from the metadata service, at each login; in use since %s", c.CredentialSource, sp.when(c.CredentialSetAt))
	case c.CredentialFile != "":
		sp.p("  credential\t%s, not used yet", c.CredentialSource)
	case c.HasCredential():
		sp.p("  credential\t%s, fingerprint %s, set %s", c.CredentialSource, orDash(c.CredentialFingerprint), sp.when(c.CredentialSetAt))
	default:
		sp.p("  credential\tNONE: hand one over with the bootstrap agent or set CONJUR_SWARM_CREDENTIAL_FILE")
	}
	if c.CredentialFile != "" {
		sp.p("  credential file\t%s", c.CredentialFile)
	}
	if h != nil {
		if h.Accepted {
			sp.p("  last handoff\taccepted %s, fingerprint %s", sp.when(h.At), orDash(h.Fingerprint))
		} else {
			sp.p("  last handoff\tREFUSED [%s] %s, fingerprint %s: %s", h.Code, sp.when(h.At), orDash(h.Fingerprint), h.Err)
		}
	}
	if !c.TokenExpiresAt.IsZero() {
		sp.p("  token expires\t%s", c.TokenExpiresAt.UTC().Format(time.RFC3339))
	}
	sp.p("  last contact\t%s%s", sp.when(c.LastContact), via(c.LastURL))
	if c.LastErrorCode != "" || c.LastError != "" {
		at := ""
		if !c.LastErrorAt.IsZero() {
			at = " at " + sp.when(c.LastErrorAt)
		}
		sp.p("  last error\t[%s]%s: %s", c.LastErrorCode, at, c.LastError)
	}
	for _, u := range c.URLs {
		health := "healthy"
		if !u.Healthy {
			health = fmt.Sprintf("failing (%d failures, retry %s)", u.Failures, sp.when(u.RetryAt))
			if u.LastError != "" {
				health += ": " + u.LastError
			}
		}
		sp.p("  url\t%s %s", u.URL, health)
	}
}

// mapping writes the mapping file's section.
func (sp statusPrinter) mapping(m *pluginapi.MappingState) {
	path := m.Path
	if path == "" {
		path = "built-in policy"
	}
	if m.FailClosed {
		sp.p("Mapping\t%s INVALID, no policy in force: every request is refused MAPPING_INVALID until the file is fixed", path)
		for _, pr := range m.Problems {
			sp.p("  problem\t%s", pr)
		}
		sp.p("  check\tconjur-swarm policy validate FILE; the plugin adopts the file within seconds of the fix")
		return
	}
	sp.p("Mapping\t%s, %s, %d rules, loaded %s", path, m.Hash, m.Rules, sp.when(m.LoadedAt))
	if m.LastError != "" {
		sp.p("  rejected\t%s: %s (the previous file stays in force)", sp.when(m.LastErrorAt), m.LastError)
	}
}

// staleRules writes, for each stale_if_error rule, how many of the
// variables its Gets asked for have a last good value now: whether an
// outage of Conjur would be ridden out.
func (sp statusPrinter) staleRules(rules []pluginapi.StaleRuleState) {
	for i, r := range rules {
		label := ""
		if i == 0 {
			label = "Stale values"
		}
		head := fmt.Sprintf("%s\trule %s (stale_if_error %s): ", label, r.Rule, r.Window)
		switch {
		case r.Variables == 0:
			sp.p("%sno Get yet, so no last good value: a Conjur outage now fails its secrets", head)
		case r.Held < r.Variables:
			sp.p("%s%d of %d variables have a last good value (an outage now fails the others)", head, r.Held, r.Variables)
		default:
			sp.p("%s%d of %d variables have a last good value", head, r.Held, r.Variables)
		}
	}
}

// writeRecent writes the recent decisions' table and why the refused ones
// were refused.
func writeRecent(w io.Writer, recent []audit.Record) error {
	if len(recent) == 0 {
		_, err := fmt.Fprintln(w, "\nNo decisions yet.")
		return err
	}
	fmt.Fprintf(w, "\nRecent decisions, newest first:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The IDENTITY column shows when a decision names one (the
	// per-request identity mode).
	identities := slices.ContainsFunc(recent, func(r audit.Record) bool { return r.Identity != "" })
	identity := func(r audit.Record) string {
		if !identities {
			return ""
		}
		return orDash(r.Identity) + "\t"
	}
	fmt.Fprintln(tw, "TIME\tDECISION\tCODE\tSECRET\tSERVICE\tNODE\tRULE\t"+identity(audit.Record{Identity: "IDENTITY"})+"VARIABLE\tDURATION")
	for _, r := range recent {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s%s\t%s\n",
			r.Time.UTC().Format(time.TimeOnly), recordDecision(r), orDash(string(r.Code)), r.Secret, orDash(r.Service),
			orDash(r.Node), orDash(r.Rule), identity(r), recordVariables(r), r.Duration.Round(time.Microsecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var reasons []string
	for _, r := range recent {
		if r.Decision != audit.DecisionAllow && r.Reason != "" {
			reasons = append(reasons, fmt.Sprintf("  %s  %s", r.Time.UTC().Format(time.TimeOnly), r.Reason))
		}
	}
	if len(reasons) > 0 {
		fmt.Fprintf(w, "\nWhy the refused ones were refused:\n%s\n", strings.Join(reasons, "\n"))
	}
	return nil
}

// handoffWarning is the line status starts with when the last credential
// handed over was refused: the plugin goes on with its current credential
// (or none), and the refusal would otherwise show only at the next restart.
func handoffWarning(st pluginapi.Status) string {
	h := st.LastHandoff
	if h == nil || h.Accepted {
		return ""
	}
	fp := ""
	if st.Conjur.HasCredential() {
		fp = st.Conjur.CredentialFingerprint
	}
	if fp != "" && fp == h.Fingerprint {
		return ""
	}
	refused := fmt.Sprintf("WARNING: the credential handed over at %s (fingerprint %s) was refused [%s]", h.At.UTC().Format(time.RFC3339), orDash(h.Fingerprint), h.Code)
	if fp == "" {
		return refused + "; the plugin has no credential, so every request fails NO_CREDENTIAL: fix the bootstrap secret (see \"last handoff\")"
	}
	return refused + fmt.Sprintf("; the plugin still uses fingerprint %s and loses it at its next restart: fix the bootstrap secret (see \"last handoff\")", fp)
}

// recordVariables is the VARIABLE column: the variable, or a bundle's member
// ids (the failing member first when one failed).
func recordVariables(r audit.Record) string {
	if len(r.Members) == 0 {
		return orDash(r.Variable)
	}
	if r.Variable != "" {
		return fmt.Sprintf("%s (member of a bundle of %d: %s)", r.Variable, len(r.Members), strings.Join(r.Members, ","))
	}
	return "bundle: " + strings.Join(r.Members, ",")
}

func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return "in " + (-d).String()
	}
	return d.String() + " ago"
}

func via(url string) string {
	if url == "" {
		return ""
	}
	return " via " + url
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func byCode(m map[errcode.Code]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[errcode.Code(k)]))
	}
	return "; by code: " + strings.Join(parts, " ")
}

// recordDecision is a record's decision, marked when the value was a last
// good one (stale_if_error) with its age and why.
func recordDecision(r audit.Record) string {
	if !r.Stale {
		return r.Decision
	}
	return fmt.Sprintf("%s (stale %s, %s)", r.Decision, r.StaleAge.Round(time.Second), r.StaleCause)
}
