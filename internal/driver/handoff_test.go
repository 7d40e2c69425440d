package driver

import (
	"context"
	"strings"
	"testing"

	"github.com/cyberark/conjur-swarm/internal/credential"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// TestRefusedHandoffIsTheCause: a refused handoff shows in status apart from
// the credential in use, and while the plugin has no credential every
// NO_CREDENTIAL answer names that refusal (its code, fingerprint and time)
// instead of only "run the bootstrap agent".
func TestRefusedHandoffIsTheCause(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	wrong := s.handoff(pluginLogin, "wrong-key-0000")
	wrongFP := credential.Credential{Login: pluginLogin, APIKey: "wrong-key-0000"}.Fingerprint()
	good := s.handoff(pluginLogin, s.apiKey)
	goodFP := credential.Credential{Login: pluginLogin, APIKey: redact.String(s.apiKey)}.Fingerprint()

	t.Run("fail/no credential: the answer names the refused key", func(t *testing.T) {
		cfg := s.conjurConfig()
		cfg.APIKey = ""
		c := s.plugin(t, &cfg)
		if ans, err := c.Bootstrap(ctx, []byte(wrong)); err != nil || ans.OK {
			t.Fatalf("wrong key adopted: %+v %v", ans, err)
		}
		res, err := c.GetSecret(ctx, byLabel("db_password", "apps/demo/db-password"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"[NO_CREDENTIAL]", "was refused [AUTH_REFUSED]", "fingerprint " + wrongFP, "refused to authenticate"} {
			if !strings.Contains(res.Err, want) {
				t.Errorf("Err %q lacks %q", res.Err, want)
			}
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h := st.LastHandoff; h == nil || h.Accepted || h.Code != errcode.AuthRefused || h.Fingerprint != wrongFP {
			t.Errorf("status last handoff %+v, want refused AUTH_REFUSED %s", st.LastHandoff, wrongFP)
		}
		if st.Conjur.HasCredential() {
			t.Errorf("status shows a credential in use: %+v", st.Conjur)
		}
	})

	t.Run("fail/wrong CA: the answer names TLS", func(t *testing.T) {
		cfg := s.conjurConfig()
		cfg.APIKey = ""
		cfg.CACertPEM = nil // the public CAs: the dev server's certificate is not among them
		c := s.plugin(t, &cfg)
		if ans, err := c.Bootstrap(ctx, []byte(good)); err != nil || ans.OK {
			t.Fatalf("handoff checked without TLS: %+v %v", ans, err)
		}
		res, err := c.GetSecret(ctx, byLabel("db_password", "apps/demo/db-password"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.Err, "[NO_CREDENTIAL]") || !strings.Contains(res.Err, "was refused [TLS]") {
			t.Errorf("Err %q does not carry the handoff's TLS refusal", res.Err)
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Conjur.LastErrorCode != "TLS" {
			t.Errorf("status last error [%s] %s: a NO_CREDENTIAL answer replaced the TLS failure", st.Conjur.LastErrorCode, st.Conjur.LastError)
		}
	})

	t.Run("ok/a refused newer key keeps the current one, and status shows both", func(t *testing.T) {
		cfg := s.conjurConfig()
		cfg.APIKey = ""
		c := s.plugin(t, &cfg)
		if ans, err := c.Bootstrap(ctx, []byte(good)); err != nil || !ans.OK {
			t.Fatalf("good handoff: %+v %v", ans, err)
		}
		if ans, err := c.Bootstrap(ctx, []byte(wrong)); err != nil || ans.OK {
			t.Fatalf("wrong key adopted: %+v %v", ans, err)
		}
		res, err := c.GetSecret(ctx, byLabel("db_password", "apps/demo/db-password"))
		if err != nil || string(res.Value) != "demo-db-password-0001" {
			t.Fatalf("the current credential stopped working: %v %v", res.Err, err)
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Conjur.CredentialFingerprint != goodFP || st.LastHandoff == nil || st.LastHandoff.Accepted || st.LastHandoff.Fingerprint != wrongFP {
			t.Errorf("status: credential %s, last handoff %+v; want %s in use and %s refused", st.Conjur.CredentialFingerprint, st.LastHandoff, goodFP, wrongFP)
		}
	})
}
