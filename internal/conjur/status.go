package conjur

import (
	"sync"
	"time"

	"github.com/cyberark/conjur-swarm/internal/errcode"
)

// Status is the client's health for `conjur-swarm status`; it holds no secret.
type Status struct {
	Login, CredentialSource, CredentialFingerprint string
	CredentialSetAt, TokenExpiresAt, LastContact   time.Time
	LastURL                                        string
	LastErrorCode                                  errcode.Code
	LastError                                      string
	LastErrorAt                                    time.Time
	URLs                                           []URLStatus
	// CredentialFile is the state of CONJUR_SWARM_CREDENTIAL_FILE before
	// its first use (see session.credentialFileState); "" otherwise.
	CredentialFile string
	// Identities is how many identities the per-request mode holds now
	// (CredentialSource "per-request"); 0 in the single-identity modes.
	Identities int
	// SigningIssuer and SigningKeyID: the per-request mode's JWT issuer and
	// the kid of the key signing now; "" in the single-identity modes.
	SigningIssuer, SigningKeyID string
}

// URLStatus is the health of one appliance URL.
type URLStatus struct {
	URL       string
	Healthy   bool
	Failures  int
	RetryAt   time.Time
	LastError string
}

// statusBook records the last contact with Conjur and the last error a
// caller saw. Its lock is a leaf.
type statusBook struct {
	now func() time.Time

	mu          sync.Mutex
	lastContact time.Time
	lastURL     string
	lastErrCode errcode.Code
	lastErr     string
	lastErrAt   time.Time
}

// contact records an answer from url.
func (b *statusBook) contact(url string) {
	now := b.now()
	b.mu.Lock()
	b.lastContact, b.lastURL = now, url
	b.mu.Unlock()
}

// failure records err, if any, as the last error.
func (b *statusBook) failure(err error) {
	// NO_CREDENTIAL is no contact with Conjur (status shows it on the
	// credential line): the last error stays what Conjur's side last gave,
	// such as the TLS failure that refused a handoff.
	if err == nil || CodeOf(err) == errcode.NoCredential {
		return
	}
	now := b.now()
	b.mu.Lock()
	b.lastErrCode, b.lastErr, b.lastErrAt = CodeOf(err), err.Error(), now
	b.mu.Unlock()
}

// fill copies the contact and error fields into s.
func (b *statusBook) fill(s *Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.LastContact, s.LastURL = b.lastContact, b.lastURL
	s.LastErrorCode, s.LastError, s.LastErrorAt = b.lastErrCode, b.lastErr, b.lastErrAt
}
