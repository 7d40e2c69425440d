package conjurdev

import (
	"regexp"
	"slices"
	"sort"
)

// Host annotations as restrictions, the way Conjur's
// ResourceRestrictions::ExtractResourceRestrictions reads them for
// authn-azure and authn-gcp (and the dev server's authn-cert): a general
// annotation <authenticator>/<name> or a service-specific one
// <authenticator>/<service>/<name>, the specific one winning; empty
// values are ignored.

// restriction is one annotation the request must match.
type restriction struct{ name, value string }

// annotationRestrictions are role's restrictions for authenticator (e.g.
// "authn-azure") and service ("" for none), sorted by name.
func annotationRestrictions(role *resource, authenticator, service string) []restriction {
	svc := ""
	if service != "" {
		svc = "(?P<service>" + regexp.QuoteMeta(service) + "/)?"
	}
	re := regexp.MustCompile("^" + regexp.QuoteMeta(authenticator) + "/" + svc + "(?P<name>[^/]+)$")
	found := map[string]string{}
	specific := map[string]bool{}
	for name, a := range role.annotations {
		m := re.FindStringSubmatch(name)
		if m == nil || rubyBlank(a.value) {
			continue
		}
		isSpecific := service != "" && m[re.SubexpIndex("service")] != ""
		key := m[re.SubexpIndex("name")]
		if specific[key] && !isSpecific {
			continue
		}
		found[key], specific[key] = a.value, isSpecific
	}
	out := make([]restriction, 0, len(found))
	for k, v := range found {
		out = append(out, restriction{name: k, value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func restrictionNames(rs []restriction) []string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.name
	}
	return names
}

// The constraints of Conjur's Authentication::Constraints, each checked
// on the restriction names.

func requiredConstraint(required []string) func([]string) error {
	return func(names []string) error {
		var missing []string
		for _, r := range required {
			if !slices.Contains(names, r) {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			return authnErr(errConstraints+"RoleMissingConstraints", "CONJ00057E",
				"Role does not have the required constraints: '%s'", rubyInspect(missing))
		}
		return nil
	}
}

func permittedConstraint(permitted []string) func([]string) error {
	return func(names []string) error {
		var extra []string
		for _, n := range names {
			if !slices.Contains(permitted, n) {
				extra = append(extra, n)
			}
		}
		if len(extra) > 0 {
			return authnErr(errConstraints+"ConstraintNotSupported", "CONJ00050E",
				"Resource restrictions '%s' are not supported. The supported resources are '%s'", rubyInspect(extra), rubyInspect(permitted))
		}
		return nil
	}
}

func exclusiveConstraint(exclusive []string) func([]string) error {
	return func(names []string) error {
		var both []string
		for _, n := range names {
			if slices.Contains(exclusive, n) {
				both = append(both, n)
			}
		}
		if len(both) > 1 {
			return authnErr(errConstraints+"IllegalConstraintCombinations", "CONJ00055E",
				"Resource restrictions include an illegal combination of resource constraints - '%s'", rubyInspect(both))
		}
		return nil
	}
}

func anyConstraint(anyOf []string) func([]string) error {
	return func(names []string) error {
		for _, n := range names {
			if slices.Contains(anyOf, n) {
				return nil
			}
		}
		return authnErr(errConstraints+"RoleMissingRequiredConstraints", "CONJ00069E",
			"Role must have at least one of the following constraints: %s", rubyInspect(anyOf))
	}
}

// checkAnnotations is ValidateResourceRestrictions: the constraints on the
// names, then every restriction matched by match (an error, or false for
// a different value: CONJ00049E).
func checkAnnotations(rs []restriction, constraints []func([]string) error, match func(restriction) (bool, error)) error {
	names := restrictionNames(rs)
	for _, c := range constraints {
		if err := c(names); err != nil {
			return err
		}
	}
	for _, r := range rs {
		ok, err := match(r)
		if err != nil {
			return err
		}
		if !ok {
			return authnErr(errRestrictions+"InvalidResourceRestrictions", "CONJ00049E",
				"Resource restriction '%s' does not match with the corresponding value in the request", r.name)
		}
	}
	return nil
}
