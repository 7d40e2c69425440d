package policy

import "testing"

// TestExactAllowGlobAgreesWithRegexp: an allow glob whose literal text has no
// glob syntax is compared as a string; that must decide exactly as the
// compiled glob does, whatever the placeholder values hold.
func TestExactAllowGlobAgreesWithRegexp(t *testing.T) {
	for _, raw := range []string{"{stack}", "team-{service_label:team}", "{stack}.{service_label:team}/x"} {
		tmpl, errs := parseTemplate(raw)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", raw, errs)
		}
		exact := pattern{raw: raw, tmpl: &tmpl, exact: literalOnly(tmpl)}
		if !exact.exact {
			t.Fatalf("%s: want an exact pattern", raw)
		}
		viaRegexp := exact
		viaRegexp.exact = false
		for _, val := range []string{"shop", "a*b", "[x]", `back\slash`, "-^!", "é", "shop_"} {
			req := Request{
				SecretLabels:  map[string]string{stackLabel: val},
				ServiceLabels: map[string]string{"team": val},
			}
			for _, v := range []string{val, "shop", "a*b", "axb", "team-" + val, val + "." + val + "/x", "", "\xff"} {
				gotOK, gotWhy := exact.matches(v, &req, nil)
				wantOK, wantWhy := viaRegexp.matches(v, &req, nil)
				if gotOK != wantOK || gotWhy != wantWhy {
					t.Errorf("%s with %q against %q: exact (%v, %q), regexp (%v, %q)", raw, val, v, gotOK, gotWhy, wantOK, wantWhy)
				}
			}
		}
	}
	if tmpl, _ := parseTemplate("{stack}-*"); literalOnly(tmpl) {
		t.Error(`"{stack}-*" holds glob syntax: it must not be exact`)
	}
}
