package driver

import (
	"fmt"
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// handoffLog remembers the last handoff attempt.
type handoffLog struct {
	mu   sync.Mutex
	last *pluginapi.HandoffState
}

func (h *handoffLog) note(s pluginapi.HandoffState) {
	h.mu.Lock()
	h.last = &s
	h.mu.Unlock()
}

// lastAttempt returns a copy of the last attempt, or nil.
func (h *handoffLog) lastAttempt() *pluginapi.HandoffState {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		return nil
	}
	s := *h.last
	return &s
}

// maxHandoffCause bounds the refused handoff's text a NO_CREDENTIAL answer
// carries.
const maxHandoffCause = 512

// noCredentialCause is what a NO_CREDENTIAL answer adds when the last
// handoff was refused: that refusal is the real cause (a wrong key, the CA,
// Conjur unreachable), not a missing bootstrap agent.
func (h *handoffLog) noCredentialCause() string {
	last := h.lastAttempt()
	if last == nil || last.Accepted {
		return ""
	}
	return pluginapi.ClipTo(fmt.Sprintf("; the last credential handed over (fingerprint %s, at %s) was refused [%s]: %s",
		orNone(last.Fingerprint), last.At.UTC().Format(time.RFC3339), last.Code, last.Err), maxHandoffCause)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
