package identity

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var t0 = time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)

func TestSign_claimsAreExactlyTheIssues(t *testing.T) {
	s := openFresh(t)
	sg, err := NewSigner(s, Options{Issuer: "https://swarm.example", Audience: "conjur", Lifetime: 3 * time.Minute, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := sg.Sign(Claims{Subject: "stacks/shop", Service: "shop_web", Stack: "shop", ServiceID: "sid1", TaskID: "tid1", NodeID: "nid1", Image: "shop:1"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tok) != "[REDACTED]" {
		t.Fatalf("a signed JWT prints as %q, want it redacted", fmt.Sprint(tok))
	}
	if !exp.Equal(t0.Add(3 * time.Minute)) {
		t.Errorf("exp %v, want %v", exp, t0.Add(3*time.Minute))
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.NewParser(jwt.WithTimeFunc(func() time.Time { return t0 }), jwt.WithValidMethods([]string{"RS256"})).
		ParseWithClaims(tok.Reveal(), claims, func(tk *jwt.Token) (any, error) { return s.Current().Public(), nil })
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["kid"] != s.Current().ID {
		t.Errorf("kid header %v, want %s", parsed.Header["kid"], s.Current().ID)
	}
	want := map[string]any{
		"iss": "https://swarm.example", "aud": "conjur", "sub": "stacks/shop",
		"iat": float64(t0.Add(-IssuedAtSkew).Unix()), "exp": float64(t0.Add(3 * time.Minute).Unix()),
		"service": "shop_web", "stack": "shop", "service_id": "sid1", "task_id": "tid1", "node_id": "nid1", "image": "shop:1",
	}
	if fmt.Sprint(map[string]any(claims)) != fmt.Sprint(want) {
		t.Fatalf("claims\n got %v\nwant %v", map[string]any(claims), want)
	}
}

func TestSign_afterRotateUsesTheNewKey(t *testing.T) {
	s := openFresh(t)
	sg, err := NewSigner(s, Options{Issuer: "iss"})
	if err != nil {
		t.Fatal(err)
	}
	next, err := s.PrepareNext()
	if err != nil {
		t.Fatal(err)
	}
	kidOf := func() string {
		tok, _, err := sg.Sign(Claims{Subject: "a"})
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := jwt.NewParser().ParseUnverified(tok.Reveal(), jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Header["kid"].(string)
	}
	if got := kidOf(); got == next.ID {
		t.Fatalf("the next key signs before Rotate")
	}
	if _, err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	if got := kidOf(); got != next.ID || sg.KeyID() != next.ID {
		t.Fatalf("after Rotate the signer signs with %s, want %s", got, next.ID)
	}
}

func TestNewSigner_refusesBadOptions(t *testing.T) {
	s := openFresh(t)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no-issuer", Options{}, "CONJUR_SWARM_IDENTITY_ISSUER"},
		{"lifetime-too-long", Options{Issuer: "i", Lifetime: 2 * time.Hour}, "token lifetime 2h0m0s"},
		{"lifetime-too-short", Options{Issuer: "i", Lifetime: time.Second}, "want between 1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewSigner(s, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewSigner = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	sg, err := NewSigner(s, Options{Issuer: "i"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sg.Sign(Claims{}); err == nil || !strings.Contains(err.Error(), "subject") {
		t.Fatalf("Sign with no subject = %v, want an error", err)
	}
}

// TestSign_seesARotationByAnotherProcess: `conjur-swarm jwks --next` and
// `--rotate` run on the host against the state directory while the plugin
// signs; the plugin's next JWT uses the new key.
func TestSign_seesARotationByAnotherProcess(t *testing.T) {
	plugin := openFresh(t)
	sg, err := NewSigner(plugin, Options{Issuer: "iss"})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Open(plugin.Dir())
	if err != nil {
		t.Fatal(err)
	}
	next, err := cli.PrepareNext()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sg.Sign(Claims{Subject: "a"}); err != nil || sg.KeyID() == next.ID {
		t.Fatalf("Sign = %v, key %s: the next key must not sign before rotation", err, sg.KeyID())
	}
	if got := kids(plugin.JWKS()); got != plugin.Current().ID+","+next.ID {
		t.Fatalf("the plugin's JWKS %s does not show the next key the CLI made", got)
	}
	if _, err := cli.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sg.Sign(Claims{Subject: "a"}); err != nil || sg.KeyID() != next.ID {
		t.Fatalf("after the CLI's rotation Sign = %v with key %s, want %s", err, sg.KeyID(), next.ID)
	}
	chmod(t, filepath.Join(plugin.Dir(), CurrentKeyFile), 0o644)
	if _, _, err := sg.Sign(Claims{Subject: "a"}); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("Sign with a key file opened to others = %v, want a refusal", err)
	}
}
