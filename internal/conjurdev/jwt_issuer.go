package conjurdev

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// JWTIssuer signs JWTs with an RSA key, standing in for an identity
// provider in tests and demos.
type JWTIssuer struct {
	issuer string
	kid    string
	key    *rsa.PrivateKey
}

// NewJWTIssuer makes an issuer with a fresh RSA key pair.
func NewJWTIssuer(issuer string) (*JWTIssuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("conjurdev: generate the JWT signing key: %w", err)
	}
	sum := sha256.Sum256(key.N.Bytes())
	return &JWTIssuer{issuer: issuer, kid: hex.EncodeToString(sum[:8]), key: key}, nil
}

// Issuer is the iss claim the issuer signs with.
func (j *JWTIssuer) Issuer() string { return j.issuer }

// PublicKeysJSON is the value for an authn-jwt public-keys variable.
func (j *JWTIssuer) PublicKeysJSON() string {
	b, _ := json.Marshal(map[string]any{"type": "jwks", "value": j.jwks()})
	return string(b)
}

// JWKS is the issuer's public key set {"keys":[...]}, as an identity
// provider publishes it (Options.ProviderKeys).
func (j *JWTIssuer) JWKS() string {
	b, _ := json.Marshal(j.jwks())
	return string(b)
}

func (j *JWTIssuer) jwks() map[string]any {
	e := big.NewInt(int64(j.key.E)).Bytes()
	return map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": j.kid,
		"n": base64.RawURLEncoding.EncodeToString(j.key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(e),
	}}}
}

// Sign returns an RS256 JWT with claims plus iss, iat and exp (now + ttl)
// unless claims set them; a claim set to nil is left out (Sign(map[string]any{"exp": nil}, 0)
// has no exp).
func (j *JWTIssuer) Sign(claims map[string]any, ttl time.Duration) (string, error) {
	now := time.Now()
	mc := jwt.MapClaims{"iss": j.issuer, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(mc, k)
			continue
		}
		mc[k] = v
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, mc)
	t.Header["kid"] = j.kid
	out, err := t.SignedString(j.key)
	if err != nil {
		return "", fmt.Errorf("conjurdev: sign a JWT: %w", err)
	}
	return out, nil
}

// redacted stands for the signing key when an issuer is printed.
const redacted = redact.Marker

// String names the issuer and its key id, never the key. (%#v prints the
// key field as a pointer.)
func (j *JWTIssuer) String() string {
	if j == nil {
		return "conjurdev.JWTIssuer(nil)"
	}
	return fmt.Sprintf("conjurdev.JWTIssuer{Issuer:%q Kid:%q Key:%s}", j.issuer, j.kid, redacted)
}
