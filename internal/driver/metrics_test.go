package driver

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

func TestMetricsCountDecisions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDriver(t, demoFetcher(), &fakeResolver{}, func(o *Options) { o.Observer = m })
	ctx := context.Background()
	d.GetSecret(ctx, labelled("apps/demo/db-password"))
	d.GetSecret(ctx, labelled("apps/demo/db-password"))
	d.GetSecret(ctx, labelled("apps/demo/missing"))
	d.GetSecret(ctx, pluginapi.Request{SecretName: "plain"})

	want := `
# HELP conjur_swarm_decisions_total GetSecret decisions by outcome (allow, deny, error), error code and mapping rule.
# TYPE conjur_swarm_decisions_total counter
conjur_swarm_decisions_total{code="",decision="allow",rule="by-label"} 2
conjur_swarm_decisions_total{code="DENIED",decision="deny",rule=""} 1
conjur_swarm_decisions_total{code="NOT_FOUND",decision="error",rule="by-label"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "conjur_swarm_decisions_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 3 {
		t.Errorf("%d duration series, want one per decision kind (3)", n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if strings.Contains(l.GetValue(), "db_password") || strings.Contains(l.GetValue(), "apps/demo") {
					t.Errorf("metric %s carries a secret name or variable id: %s", f.GetName(), l.GetValue())
				}
			}
		}
	}
}
