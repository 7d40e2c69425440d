package policy

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every problem has a
// position and is one line, and that a policy it accepts resolves requests
// within the safety rules.
func FuzzParse(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte(builtinYAML))
	for _, tc := range okCases {
		f.Add([]byte(tc.src))
	}
	for _, tc := range problemCases {
		f.Add([]byte(tc.src))
	}
	for _, tc := range bundleOKCases {
		f.Add([]byte(tc.src))
	}
	for _, tc := range bundleProblemCases {
		f.Add([]byte(tc.src))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yml", data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %v is not Problems", err)
			}
			for _, pr := range ps {
				if pr.File != "fuzz.yml" || pr.Line < 1 || pr.Col < 1 || pr.Msg == "" {
					t.Fatalf("problem without a position or message: %+v", pr)
				}
				if strings.ContainsAny(pr.String(), "\n\r") {
					t.Fatalf("problem spans lines: %q", pr.String())
				}
			}
			return
		}
		for _, req := range fuzzSeedRequests() {
			checkDecision(t, p, req, p.Resolve(req))
		}
	})
}

// FuzzResolve checks the safety invariant: an allowed id always obeys the
// safety rules and lies under within, and every deny names a condition.
func FuzzResolve(f *testing.F) {
	policies := fuzzPolicies(f)
	for _, req := range fuzzSeedRequests() {
		for which := range uint8(len(policies)) {
			f.Add(which, req.SecretName, req.SecretLabels[stackLabel], req.SecretLabels["conjur.variable"]+req.SecretLabels["conjur.latest"],
				req.SecretLabels["conjur.version"], req.ServiceName, req.ServiceLabels[stackLabel], req.ServiceLabels["env"], req.Image, req.NodeID)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, secret, stack, variable, version, service, serviceStack, env, image, node string) {
		p := policies[int(which)%len(policies)]
		req := Request{SecretName: secret, ServiceName: service, Image: image, NodeID: node,
			SecretLabels: map[string]string{}, ServiceLabels: map[string]string{}}
		set := func(m map[string]string, k, v string) {
			if v != "" {
				m[k] = v
			}
		}
		set(req.SecretLabels, stackLabel, stack)
		set(req.SecretLabels, "conjur.variable", variable)
		set(req.SecretLabels, "conjur.latest", variable)
		set(req.SecretLabels, "conjur.version", version)
		set(req.ServiceLabels, stackLabel, serviceStack)
		set(req.ServiceLabels, "env", env)
		checkDecision(t, p, req, p.Resolve(req))
	})
}

// fuzzPolicies are the policies FuzzResolve draws from.
func fuzzPolicies(t testing.TB) []*Policy {
	ps := []*Policy{mustParse(t, testPolicy), Builtin(), mustParse(t, bundlePolicy)}
	files, err := filepath.Glob(filepath.Join(docsDir, "examples", "mapping-recipes", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, filepath.Join(docsDir, "examples", "mapping.yml")) {
		p, err := ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// fuzzSeedRequests are the requests of the table tests.
func fuzzSeedRequests() []Request {
	var out []Request
	for _, tc := range matchingCases() {
		out = append(out, tc.req)
	}
	for _, tc := range hostileCases() {
		out = append(out, tc.req)
	}
	return out
}

// checkDecision asserts the invariants every decision must satisfy. It
// checks ids with its own, independent reading of the safety rules.
func checkDecision(t *testing.T, p *Policy, req Request, d Decision) {
	t.Helper()
	if strings.ContainsAny(d.Reason, "\n\r") || d.Reason == "" {
		t.Fatalf("reason is not one line: %q", d.Reason)
	}
	if !d.Allow {
		if d.Condition == "" {
			t.Fatalf("deny without a condition: %+v", d)
		}
		if d.Rule != "" && !strings.Contains(d.Reason, `rule "`+d.Rule+`"`) {
			t.Fatalf("deny reason does not name rule %q: %q", d.Rule, d.Reason)
		}
		if d.Rule == "" && d.Condition != "match" {
			t.Fatalf("deny without a rule must be a no-match: %+v", d)
		}
		if d.Bundle != nil {
			checkBundleDecision(t, p, req, d)
		}
		if d.Variable != "" {
			// A deny after the id was checked (allow or version failed)
			// reports it; it must be safe too.
			checkSafeID(t, p, d.Variable)
		}
		return
	}
	if d.Rule == "" || d.Condition != "" {
		t.Fatalf("allow without a rule or with a condition: %+v", d)
	}
	if d.Bundle != nil {
		checkBundleDecision(t, p, req, d)
		return
	}
	checkSafeID(t, p, d.Variable)
	// The id stays in the branch the rule's template starts with: no value
	// moves it elsewhere.
	for _, r := range p.rules {
		if r.name == d.Rule && !strings.HasPrefix(d.Variable, r.variable.prefix()) {
			t.Fatalf("rule %q: id %q left its template's prefix %q", r.name, d.Variable, r.variable.prefix())
		}
		if r.name != d.Rule {
			continue
		}
		// Service-side values expand to one path segment: an allowed id
		// never took a value with a / from the task.
		for _, ph := range r.variable.placeholders() {
			var v string
			switch ph.kind {
			case phService:
				v = req.ServiceName
			case phServiceLabel:
				v = req.ServiceLabels[ph.arg]
			case phImage:
				v = req.Image
			case phNode:
				v = req.NodeID
			}
			if strings.Contains(v, "/") {
				t.Fatalf("rule %q allowed %q with %s = %q, which holds a /", r.name, d.Variable, ph, v)
			}
		}
	}
	if d.Version < 0 {
		t.Fatalf("negative version %d", d.Version)
	}
}

func checkSafeID(t *testing.T, p *Policy, id string) {
	t.Helper()
	if id == "" || len(id) > 512 {
		t.Fatalf("allowed id %q has a bad length", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@:+=-/", c) >= 0
		if !ok {
			t.Fatalf("allowed id %q holds byte %#x", id, c)
		}
	}
	for _, seg := range strings.Split(id, "/") {
		if seg == "" || seg == "." || seg == ".." {
			t.Fatalf("allowed id %q has segment %q", id, seg)
		}
	}
	if len(p.within) == 0 {
		return
	}
	for _, w := range p.within {
		if strings.HasPrefix(id, w) && len(id) > len(w) && strings.HasSuffix(w, "/") {
			return
		}
	}
	t.Fatalf("allowed id %q is outside within %v", id, p.within)
}
