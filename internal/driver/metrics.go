package driver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Metrics is an Observer that exports Prometheus metrics. Labels are the
// decision, the error code and the rule name: bounded sets chosen by the
// operator, never a secret name, a variable id or a value.
type Metrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	stale     *prometheus.CounterVec
	relabel   prometheus.Counter
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the driver's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "conjur_swarm",
			Name:      "decisions_total",
			Help:      "GetSecret decisions by outcome (allow, deny, error), error code and mapping rule.",
		}, []string{"decision", "code", "rule"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "conjur_swarm",
			Name:      "decision_duration_seconds",
			Help:      "Time to answer a GetSecret request, by outcome.",
			Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25},
		}, []string{"decision"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "conjur_swarm",
			Name:      "stale_answers_total",
			Help:      "Allowed answers served from the last good value of a stale_if_error rule because Conjur was unavailable or too slow, by mapping rule.",
		}, []string{"rule"}),
		relabel: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "conjur_swarm",
			Name:      "stack_label_mismatches_total",
			Help:      "Requests for a secret whose stack label disagrees with its name (another stack's file relabelled it); conjur-swarm status lists the secrets.",
		}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.duration, m.stale, m.relabel} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveDecision counts one decision.
func (m *Metrics) ObserveDecision(decision string, code errcode.Code, rule string, d time.Duration) {
	m.decisions.WithLabelValues(decision, string(code), rule).Inc()
	m.duration.WithLabelValues(decision).Observe(d.Seconds())
}

// ObserveStale counts one answer served from a last good value.
func (m *Metrics) ObserveStale(rule string) {
	m.stale.WithLabelValues(rule).Inc()
}

// ObserveStackMismatch counts one request for a relabelled secret.
func (m *Metrics) ObserveStackMismatch() {
	m.relabel.Inc()
}
