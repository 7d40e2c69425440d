package conjurdev

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Access tokens look like Conjur's: a JSON object with "protected",
// "payload" and "signature" fields, each in URL-safe base64 with padding as
// slosilo writes them, the protected header naming alg, kid and typ "JWT"
// and the payload carrying sub, iat and exp. Conjur signs with an RSA key
// (slosilo); the dev server signs with an HMAC key of its own, which the
// client cannot tell apart because it never verifies the signature.
// ExpireTokens replaces the key, so every token issued before fails
// verification.

// tokenError is a token problem; its text is the 401 body, word for word
// as Conjur sends it.
type tokenError string

func (e tokenError) Error() string { return string(e) }

// Token errors, each answered 401 with its text as Conjur does.
const (
	errAuthMissing    tokenError = "Authorization missing"
	errTokenMalformed tokenError = "Malformed authorization token"
	errTokenInvalid   tokenError = "Unauthorized: Invalid token"
)

// tokenClaims is the payload of an access token.
type tokenClaims struct {
	Sub string `json:"sub"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

type tokenKey struct {
	secret []byte
	kid    string
	// protected is the base64 protected header, the same for every token.
	protected string
}

type tokenSigner struct {
	key atomic.Pointer[tokenKey]

	// cache remembers headers already verified under the current key, so a
	// client reusing its token costs a map lookup (expiry is still checked
	// on every use). Rotation and overflow empty it.
	cacheMu sync.RWMutex
	cache   map[string]tokenClaims
}

const maxTokenCache = 4096

func newTokenSigner() (*tokenSigner, error) {
	s := &tokenSigner{}
	if err := s.rotate(); err != nil {
		return nil, err
	}
	return s, nil
}

// rotate replaces the signing key: every token signed before is rejected.
func (s *tokenSigner) rotate() error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	return s.setSecret(secret)
}

// secret is the current signing key (for the state directory).
func (s *tokenSigner) secret() []byte {
	return append([]byte(nil), s.key.Load().secret...)
}

// setSecret makes secret the signing key (a restored one, or a new one).
func (s *tokenSigner) setSecret(secret []byte) error {
	if len(secret) < 32 {
		return errors.New("conjurdev: the token key is shorter than 32 bytes")
	}
	secret = append([]byte(nil), secret...)
	sum := sha256.Sum256(secret)
	kid := hex.EncodeToString(sum[:16])
	hdr, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{"conjur.org/slosilo/v2", kid, "JWT"})
	s.cacheMu.Lock()
	s.key.Store(&tokenKey{secret: secret, kid: kid, protected: tokenB64.EncodeToString(hdr)})
	s.cache = map[string]tokenClaims{}
	s.cacheMu.Unlock()
	return nil
}

type tokenJSON struct {
	Protected string `json:"protected"`
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

func sign(k *tokenKey, protected, payload string) string {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte(protected))
	m.Write([]byte{'.'})
	m.Write([]byte(payload))
	return tokenB64.EncodeToString(m.Sum(nil))
}

// tokenB64 is the encoding of the three token fields: slosilo's
// Base64.urlsafe_encode64 (URL-safe alphabet, padded). For the JSON of
// ordinary logins it gives the same text as standard base64, which is what
// conjur-api-go decodes the payload with; the signature differs.
var tokenB64 = base64.URLEncoding

// issue returns the raw JSON access token for sub, valid for ttl from now.
func (s *tokenSigner) issue(sub string, now time.Time, ttl time.Duration) []byte {
	k := s.key.Load()
	c := tokenClaims{Sub: sub, Iat: now.Unix(), Exp: now.Add(ttl).Unix()}
	if c.Exp <= c.Iat {
		c.Exp = c.Iat + 1
	}
	payload := tokenB64.EncodeToString(c.json())
	sig := sign(k, k.protected, payload)
	// The three fields are base64: nothing in them is escaped, so the
	// token is written as json.Marshal(tokenJSON{...}) writes it.
	out := make([]byte, 0, len(k.protected)+len(payload)+len(sig)+48)
	out = append(out, `{"protected":"`...)
	out = append(out, k.protected...)
	out = append(out, `","payload":"`...)
	out = append(out, payload...)
	out = append(out, `","signature":"`...)
	out = append(out, sig...)
	return append(out, `"}`...)
}

// json is c as json.Marshal writes it: written directly when sub holds
// nothing json.Marshal escapes (printable ASCII without quote, backslash,
// <, > or &), through json.Marshal otherwise.
func (c tokenClaims) json() []byte {
	if !plainJSON(c.Sub) || strings.ContainsAny(c.Sub, "<>&") {
		p, _ := json.Marshal(c)
		return p
	}
	out := make([]byte, 0, len(c.Sub)+64)
	out = append(out, `{"sub":"`...)
	out = append(out, c.Sub...)
	out = append(out, `","iat":`...)
	out = strconv.AppendInt(out, c.Iat, 10)
	out = append(out, `,"exp":`...)
	out = strconv.AppendInt(out, c.Exp, 10)
	return append(out, '}')
}

// parseAuthorization checks an Authorization header value of the form
// `Token token="<base64 of the token JSON>"` and returns the token's claims.
// Errors are errAuthMissing, errTokenMalformed or errTokenInvalid.
func (s *tokenSigner) parseAuthorization(header string, now time.Time) (tokenClaims, error) {
	if header == "" {
		return tokenClaims{}, errAuthMissing
	}
	s.cacheMu.RLock()
	c, hit := s.cache[header]
	s.cacheMu.RUnlock()
	if hit {
		if now.Unix() >= c.Exp {
			return tokenClaims{}, errTokenInvalid
		}
		return c, nil
	}
	raw, err := tokenFromHeader(header)
	if err != nil {
		return tokenClaims{}, err
	}
	k := s.key.Load()
	c, err = s.verifyWith(k, raw, now)
	if err != nil {
		return tokenClaims{}, err
	}
	s.cacheMu.Lock()
	if s.key.Load() == k { // not rotated meanwhile
		if len(s.cache) >= maxTokenCache {
			s.cache = map[string]tokenClaims{}
		}
		s.cache[header] = c
	}
	s.cacheMu.Unlock()
	return c, nil
}

// tokenFromHeader extracts and decodes the token bytes of an Authorization
// header as conjur-rack 5.0.0 (vendored in Conjur 1.24) does: the header
// must match ^Token token="(.*)" (greedy), else "Authorization missing";
// the token is decoded leniently as Ruby's Base64.decode64 does.
func tokenFromHeader(header string) ([]byte, error) {
	const prefix = `Token token="`
	if !strings.HasPrefix(header, prefix) {
		return nil, errAuthMissing
	}
	rest := header[len(prefix):]
	end := strings.LastIndexByte(rest, '"')
	if end < 0 {
		return nil, errAuthMissing
	}
	return rubyDecode64(rest[:end]), nil
}

// rubyDecode64 is Ruby's Base64.decode64 (String#unpack("m")): characters
// outside the alphabet are skipped, decoding stops at padding, and a
// trailing partial group is dropped.
func rubyDecode64(s string) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var out []byte
	var acc, n uint32
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			break
		}
		v := strings.IndexByte(alphabet, s[i])
		if v < 0 {
			continue
		}
		acc = acc<<6 | uint32(v)
		n++
		if n == 4 {
			out = append(out, byte(acc>>16), byte(acc>>8), byte(acc))
			acc, n = 0, 0
		}
	}
	switch n {
	case 2:
		out = append(out, byte(acc>>4))
	case 3:
		out = append(out, byte(acc>>10), byte(acc>>2))
	}
	return out
}

// verifyWith checks the token's form, its signature under k and its
// lifetime.
func (s *tokenSigner) verifyWith(k *tokenKey, raw []byte, now time.Time) (tokenClaims, error) {
	// conjur-rack: text that is not JSON is "Malformed authorization
	// token"; JSON that is not a signed token is "Unauthorized: Invalid
	// token".
	var any any
	if err := json.Unmarshal(raw, &any); err != nil {
		return tokenClaims{}, errTokenMalformed
	}
	var t tokenJSON
	if err := json.Unmarshal(raw, &t); err != nil || t.Protected == "" || t.Payload == "" || t.Signature == "" {
		return tokenClaims{}, errTokenInvalid
	}
	want := sign(k, t.Protected, t.Payload)
	if !hmac.Equal([]byte(want), []byte(t.Signature)) {
		return tokenClaims{}, errTokenInvalid
	}
	p, err := tokenB64.DecodeString(t.Payload)
	if err != nil {
		return tokenClaims{}, errTokenInvalid
	}
	var c tokenClaims
	if err := json.Unmarshal(p, &c); err != nil || c.Sub == "" || c.Exp == 0 {
		return tokenClaims{}, errTokenInvalid
	}
	if now.Unix() >= c.Exp {
		return tokenClaims{}, errTokenInvalid
	}
	return c, nil
}
