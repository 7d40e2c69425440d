package policy

import "testing"

// anchorPolicy holds re: patterns in match and in allow whose unanchored,
// half-anchored or ungrouped (`\Aa|b\z`) forms admit more than the whole
// value: docs/mapping.md promises that a re: pattern matches the whole value.
const anchorPolicy = `version: 1
rules:
  - name: alt
    match:
      secret: "re:db|cache"
    variable: apps/alt/{secret}
  - name: pinned
    match:
      secret: "re:img_(?P<k>[a-z]+)"
    variable: apps/img/{match:k}
    allow:
      image: ["re:registry\\.example\\.com/.+", "re:mirror\\.example\\.com/app|mirror\\.example\\.com/web"]
`

// TestRePatternsMatchTheWholeValue is issue 21 item 13: each case fails
// under one of the mutants that drop \A, \z or the (?:...) around the
// expression, in match or in allow.
func TestRePatternsMatchTheWholeValue(t *testing.T) {
	p := mustParse(t, anchorPolicy)
	for _, tc := range []struct {
		name, secret, image, wantRule string
		wantAllow                     bool
	}{
		{name: "allowed/match-first-alternative", secret: "db", wantRule: "alt", wantAllow: true},
		{name: "allowed/match-second-alternative", secret: "cache", wantRule: "alt", wantAllow: true},
		{name: "denied/match-suffix-after-first-alternative", secret: "db_x"},
		{name: "denied/match-prefix-before-second-alternative", secret: "x_cache"},
		{name: "denied/match-prefix-before-first-alternative", secret: "xdb"},
		{name: "denied/match-suffix-after-second-alternative", secret: "cachex"},
		{name: "denied/match-group-prefix", secret: "evil_img_a", image: "registry.example.com/a"},
		{name: "allowed/allow-registry", secret: "img_a", image: "registry.example.com/payments/api:1", wantRule: "pinned", wantAllow: true},
		{name: "denied/allow-registry-inside-another-host", secret: "img_a", image: "evil.io/registry.example.com/x", wantRule: "pinned"},
		{name: "allowed/allow-first-alternative", secret: "img_a", image: "mirror.example.com/app", wantRule: "pinned", wantAllow: true},
		{name: "allowed/allow-second-alternative", secret: "img_a", image: "mirror.example.com/web", wantRule: "pinned", wantAllow: true},
		{name: "denied/allow-suffix-after-first-alternative", secret: "img_a", image: "mirror.example.com/app.evil.io/x", wantRule: "pinned"},
		{name: "denied/allow-prefix-before-second-alternative", secret: "img_a", image: "evil.io/mirror.example.com/web", wantRule: "pinned"},
		{name: "denied/allow-suffix-after-second-alternative", secret: "img_a", image: "mirror.example.com/web-evil", wantRule: "pinned"},
		{name: "denied/allow-prefix-before-first-alternative", secret: "img_a", image: "evil/mirror.example.com/app", wantRule: "pinned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image := tc.image
			if image == "" {
				image = "registry.example.com/a"
			}
			d := p.Resolve(Request{SecretName: tc.secret, ServiceName: "s", Image: image, NodeID: "n"})
			if d.Allow != tc.wantAllow || d.Rule != tc.wantRule {
				t.Fatalf("secret %q image %q: allow=%v rule=%q (%s), want allow=%v rule=%q",
					tc.secret, image, d.Allow, d.Rule, d.Reason, tc.wantAllow, tc.wantRule)
			}
		})
	}
}
