package conjurdev

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// maxPolicyLog bounds the loads kept per policy for policy_versions in
// resource JSON (Conjur keeps them all, in its database).
const maxPolicyLog = 20

// policyVersion is one load of a policy, as Conjur's PolicyVersion
// renders it in a policy's resource JSON.
type policyVersion struct {
	Version  int    `json:"version"`
	Created  string `json:"created_at"`
	Text     string `json:"policy_text"`
	SHA256   string `json:"policy_sha256"`
	Finished string `json:"finished_at"`
	ClientIP string `json:"client_ip"`
	ID       string `json:"id"`
	Role     string `json:"role"`
}

// notePolicyVersion records a load of policy by role from ip. The caller
// holds s.mu for writing.
func (st *store) notePolicyVersion(policy string, version int, text []byte, role, ip string, now time.Time) {
	sum := sha256.Sum256(text)
	at := now.UTC().Format("2006-01-02T15:04:05.000+00:00")
	log := append(st.policyLog[policy], policyVersion{
		Version: version, Created: at, Text: string(text), SHA256: hex.EncodeToString(sum[:]),
		Finished: at, ClientIP: ip, ID: policy, Role: role,
	})
	if len(log) > maxPolicyLog {
		log = log[len(log)-maxPolicyLog:]
	}
	st.policyLog[policy] = log
}
