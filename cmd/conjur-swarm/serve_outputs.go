package main

// serve's outputs besides the plugin socket: the Prometheus endpoint and the
// syslog copy of the audit records.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/auditsink"
	"github.com/cyberark/conjur-swarm/internal/driver"
)

// newMetricsServer builds the Prometheus endpoint (/metrics) with the
// driver's metrics and the Go and process collectors; serve adds /healthz
// and /readyz once the driver exists (withHealth).
func newMetricsServer(addr string) (*driver.Metrics, *http.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := driver.NewMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m, &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}, nil
}

// withHealth serves /healthz and /readyz with health, and every other path
// with metrics: the metrics listener answers orchestrators and monitors too.
func withHealth(metrics, health http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", health)
	mux.Handle("/readyz", health)
	mux.Handle("/", metrics)
	return mux
}

// metricsIdleTimeout closes keep-alive connections to /metrics that stay
// idle: the endpoint listens on the host network, and idle connections that
// are never closed would each hold a file descriptor the plugin socket
// needs. A variable so that tests can shorten it.
var metricsIdleTimeout = 2 * time.Minute

// newAuditSink starts the syslog audit sink of CONJUR_SWARM_AUDIT_SYSLOG,
// or returns nil when it is not set. A tls:// receiver is verified against
// the system's CAs plus CONJUR_SWARM_AUDIT_SYSLOG_CA_FILE.
func newAuditSink(cfg Config, log *zap.Logger) (*auditsink.Syslog, error) {
	if cfg.AuditSyslog == "" {
		return nil, nil
	}
	target, err := auditsink.ParseTarget(cfg.AuditSyslog)
	if err != nil {
		return nil, fmt.Errorf("CONJUR_SWARM_AUDIT_SYSLOG %w", err)
	}
	var tlsCfg *tls.Config
	if target.Network == "tls" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if cfg.AuditSyslogCA != "" {
			pem, err := os.ReadFile(cfg.AuditSyslogCA)
			if err != nil {
				return nil, fmt.Errorf("CONJUR_SWARM_AUDIT_SYSLOG_CA_FILE: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CONJUR_SWARM_AUDIT_SYSLOG_CA_FILE %s holds no PEM certificate", cfg.AuditSyslogCA)
			}
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	sink, err := auditsink.New(auditsink.Options{Target: target, TLS: tlsCfg, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("audit records also go to syslog", zap.String("target", target.String()))
	return sink, nil
}
