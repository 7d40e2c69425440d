package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// devServerCloud reads --provider-keys ISSUER=FILE (a JWKS) and
// --aws-identities FILE (a JSON list of test AWS credentials and their
// ARN), what the dev server's authn-azure, authn-gcp and authn-iam verify
// against instead of calling out.
func devServerCloud(f *devServerFlags) (map[string]string, []conjurdev.IAMIdentity, error) {
	keys := map[string]string{}
	for _, p := range f.providerKeys {
		issuer, file, ok := strings.Cut(p, "=")
		if !ok || issuer == "" || file == "" {
			return nil, nil, fmt.Errorf("--provider-keys %q: want ISSUER=FILE, e.g. https://accounts.google.com=google-jwks.json", p)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("--provider-keys %s: %w", p, err)
		}
		keys[issuer] = string(b)
	}
	if f.awsIdentities == "" {
		return keys, nil, nil
	}
	b, err := os.ReadFile(f.awsIdentities)
	if err != nil {
		return nil, nil, fmt.Errorf("--aws-identities: %w", err)
	}
	var list []struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		SessionToken    string `json:"session_token"`
		ARN             string `json:"arn"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, nil, fmt.Errorf(`--aws-identities %s: want a JSON list of {"access_key_id", "secret_access_key", "session_token" (optional), "arn"}: %w`, f.awsIdentities, err)
	}
	ids := make([]conjurdev.IAMIdentity, 0, len(list))
	for i, e := range list {
		if e.AccessKeyID == "" || e.SecretAccessKey == "" || strings.Count(e.ARN, ":") < 5 {
			return nil, nil, fmt.Errorf("--aws-identities %s: entry %d needs access_key_id, secret_access_key and an arn such as arn:aws:sts::123456789012:assumed-role/ROLE/SESSION", f.awsIdentities, i)
		}
		ids = append(ids, conjurdev.IAMIdentity{AccessKeyID: e.AccessKeyID, SecretAccessKey: redact.String(e.SecretAccessKey),
			SessionToken: redact.String(e.SessionToken), ARN: e.ARN})
	}
	return keys, ids, nil
}
