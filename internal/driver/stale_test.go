package driver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// A stale_if_error rule asks the client to keep its values, answers an
// UNAVAILABLE or TIMEOUT fetch with the last good value, and counts it;
// other failures and rules without it are refused.
func TestStaleIfErrorAnswers(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	resolver := &fakeResolver{fn: func(r policy.Request) policy.Decision {
		d := policy.Decision{Allow: true, Rule: "r", Variable: r.SecretLabels["conjur.variable"], DoNotReuse: true}
		if r.SecretName == "stale" {
			d.Rule, d.StaleIfError = "stale-rule", 10*time.Minute
		}
		return d
	}}
	for _, tt := range []struct {
		name, secret string
		code         errcode.Code
		age          time.Duration
		wantStale    bool
	}{
		{"ok/UNAVAILABLE inside the window", "stale", errcode.Unavailable, 4 * time.Minute, true},
		{"ok/TIMEOUT inside the window", "stale", errcode.Timeout, time.Minute, true},
		{"fail/outside the window", "stale", errcode.Unavailable, 11 * time.Minute, false},
		{"fail/FORBIDDEN", "stale", errcode.Forbidden, time.Minute, false},
		{"fail/NOT_FOUND", "stale", errcode.NotFound, time.Minute, false},
		{"fail/AUTH_REFUSED", "stale", errcode.AuthRefused, time.Minute, false},
		{"fail/TLS", "stale", errcode.TLS, time.Minute, false},
		{"fail/a rule without stale_if_error", "fresh", errcode.Unavailable, time.Minute, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			f := &fakeConjur{err: &conjur.Error{Code: tt.code, Msg: "failed"},
				good: map[string][]byte{"apps/x": []byte("last-good")}, goodAt: now.Add(-tt.age)}
			d, logs := newTestDriver(t, nil, resolver, func(o *Options) {
				o.Conjur, o.Observer, o.Now = f, m, func() time.Time { return now }
			})
			req := labelled("apps/x")
			req.SecretName = tt.secret
			res := d.GetSecret(context.Background(), req)
			if keep := f.lastRef().KeepLastGood; keep != (tt.secret == "stale") {
				t.Errorf("Ref.KeepLastGood %t for secret %s", keep, tt.secret)
			}
			stale := testutil.ToFloat64(m.stale.WithLabelValues("stale-rule"))
			if !tt.wantStale {
				if res.Err == "" || len(res.Value) != 0 || stale != 0 {
					t.Fatalf("Err %q, %d bytes, stale metric %v; want the failure and no stale answer", res.Err, len(res.Value), stale)
				}
				return
			}
			if res.Err != "" || string(res.Value) != "last-good" || stale != 1 {
				t.Fatalf("Err %q, value ok %t, stale metric %v; want the last good value counted once", res.Err, string(res.Value) == "last-good", stale)
			}
			line := logs.FilterMessage("secret served").All()
			if len(line) != 1 || line[0].ContextMap()["stale"] != true || line[0].ContextMap()["stale_age"] != tt.age ||
				line[0].ContextMap()["stale_cause"] != string(tt.code) {
				t.Fatalf("audit lines %v, want one saying stale with age %s and cause %s", line, tt.age, tt.code)
			}
			if st := d.Status(); st.Counters.Stale != 1 || !st.Recent[0].Stale || st.Recent[0].StaleAge != tt.age {
				t.Errorf("status counters %+v, recent %+v; want the stale answer", st.Counters, st.Recent[0])
			}
			for k, v := range line[0].ContextMap() {
				if strings.Contains(fmt.Sprint(v), "last-good") {
					t.Errorf("audit field %s holds the value", k)
				}
			}
		})
	}
}
