package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// DefaultReadyInterval is how recent Conjur's last answer must be for
// /readyz (Options.ReadyInterval).
const DefaultReadyInterval = time.Minute

// Liveness is the body of /healthz: the process answers.
type Liveness struct {
	Alive     bool      `json:"alive"`
	Version   string    `json:"version,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// Readiness is the body of /readyz: Ready when every check holds.
type Readiness struct {
	Ready  bool         `json:"ready"`
	Checks []ReadyCheck `json:"checks"`
}

// ReadyCheck is one condition of readiness: mapping (a policy is in
// force), credential (one was adopted) or conjur (Conjur answered within
// the interval). Detail says what holds, or what is wrong and what to do.
type ReadyCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// prober lets one /readyz at a time ask Conjur; the others read the status
// as it is.
type prober struct{ mu sync.Mutex }

// HealthHandler serves /healthz and /readyz (for the metrics listener):
// 200 when alive (healthz) or ready (readyz), else 503, with the JSON
// bodies Liveness and Readiness.
func (d *Driver) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, Liveness{Alive: true, Version: d.opts.Version, StartedAt: d.started})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := d.Readiness(r.Context())
		status := http.StatusOK
		if !rd.Ready {
			status = http.StatusServiceUnavailable
		}
		writeHealth(w, status, rd)
	})
	return mux
}

func writeHealth(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Readiness checks that the plugin can serve a secret now: a mapping
// policy is in force, a credential was adopted, and Conjur answered within
// the ready interval. When no request reached Conjur within it, it asks
// Conjur once (Ping, as the plugin's identity; one at a time).
func (d *Driver) Readiness(ctx context.Context) Readiness {
	checks := []ReadyCheck{d.mappingCheck()}
	if d.notConfigured {
		problem := d.configProblem + "; set the plugin's Conjur settings"
		checks = append(checks, ReadyCheck{Name: "credential", Detail: problem}, ReadyCheck{Name: "conjur", Detail: problem})
	} else {
		cs := d.opts.Conjur.Status()
		if !d.recent(cs.LastContact) && cs.CredentialSource != "per-request" && d.probe.mu.TryLock() {
			_ = d.opts.Conjur.Ping(ctx) // its outcome is in the status
			d.probe.mu.Unlock()
			cs = d.opts.Conjur.Status()
		}
		checks = append(checks, credentialCheck(cs, d.handoff.lastAttempt()), d.conjurCheck(cs))
	}
	rd := Readiness{Ready: true, Checks: checks}
	for _, c := range checks {
		rd.Ready = rd.Ready && c.OK
	}
	return rd
}

// recent reports whether t is within the ready interval before now.
func (d *Driver) recent(t time.Time) bool {
	return !t.IsZero() && d.opts.Now().Sub(t) <= d.opts.ReadyInterval
}

func (d *Driver) mappingCheck() ReadyCheck {
	c := ReadyCheck{Name: "mapping", OK: true, Detail: "built-in policy"}
	if d.opts.PolicyStatus == nil {
		return c
	}
	ps := d.opts.PolicyStatus.Status()
	switch {
	case ps.FailClosed || ps.Hash == "":
		c.OK, c.Detail = false, fmt.Sprintf("no mapping policy in force: %s; fix the file (conjur-swarm policy validate FILE)", ps.LastError)
	case ps.Path != "":
		c.Detail = ps.Path + " " + ps.Hash
	}
	return c
}

func credentialCheck(cs conjur.Status, last *pluginapi.HandoffState) ReadyCheck {
	c := ReadyCheck{Name: "credential"}
	switch {
	case cs.CredentialSource == "per-request":
		c.OK, c.Detail = true, "per-request: this manager signs a JWT for each identity"
	case cs.CredentialFingerprint != "":
		c.OK, c.Detail = true, fmt.Sprintf("%s, fingerprint %s", cs.CredentialSource, cs.CredentialFingerprint)
	case cs.CredentialFile != "":
		c.Detail = "credential file: " + cs.CredentialFile
	case last != nil && !last.Accepted:
		c.Detail = fmt.Sprintf("none adopted: the last one handed over was refused [%s]; fix the bootstrap secret", last.Code)
	default:
		c.Detail = "none adopted: run the bootstrap agent to hand one over, or set CONJUR_SWARM_CREDENTIAL_FILE"
	}
	return c
}

func (d *Driver) conjurCheck(cs conjur.Status) ReadyCheck {
	c := ReadyCheck{Name: "conjur"}
	if d.recent(cs.LastContact) {
		c.OK, c.Detail = true, fmt.Sprintf("answered at %s via %s", cs.LastContact.UTC().Format(time.RFC3339), cs.LastURL)
		return c
	}
	last := "never"
	if !cs.LastContact.IsZero() {
		last = cs.LastContact.UTC().Format(time.RFC3339)
	}
	c.Detail = fmt.Sprintf("no answer within %s (last answer: %s)", d.opts.ReadyInterval, last)
	if cs.LastErrorCode != "" {
		c.Detail += fmt.Sprintf("; last error [%s] %s", cs.LastErrorCode, cs.LastError)
	}
	return c
}
