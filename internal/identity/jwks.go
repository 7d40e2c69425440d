package identity

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// JWK is the public half of one signing key, as Conjur's public-keys
// variable lists it.
type JWK struct {
	Kty string `json:"kty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// JWKS is a set of public keys: {"keys":[...]}.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicKeys is the value of Conjur's authn-jwt public-keys variable.
type PublicKeys struct {
	Type  string `json:"type"`
	Value JWKS   `json:"value"`
}

// publicJWK renders an RSA public key with its id.
func publicJWK(kid string, pub *rsa.PublicKey) JWK {
	n, e := b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	return JWK{Kty: "RSA", Use: "sig", Alg: Algorithm, Kid: kid, N: n, E: e}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// thumbprint is the RFC 7638 SHA-256 thumbprint of an RSA public key, the
// key's id: the same key has the same id on every manager and after every
// restart, and two keys never share one.
func thumbprint(pub *rsa.PublicKey) string {
	e := b64(big.NewInt(int64(pub.E)).Bytes())
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + b64(pub.N.Bytes()) + `"}`))
	return b64(sum[:])
}

// JWKS returns the store's public keys: the current key, then the next key
// when one is prepared (published before it signs).
func (s *Store) JWKS() JWKS {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := JWKS{Keys: []JWK{publicJWK(s.current.ID, s.current.Public())}}
	if s.next != nil {
		out.Keys = append(out.Keys, publicJWK(s.next.ID, s.next.Public()))
	}
	return out
}

// Input is one file given to Merge: its name (for messages) and content.
type Input struct {
	Name string
	Data []byte
}

// MaxInput bounds one merge input: a JWKS of a few keys is a few KiB.
const MaxInput = 1 << 20

// Merge combines several managers' JWKS (each a {"keys":[...]} as
// `conjur-swarm jwks` prints it, or a public-keys value
// {"type":"jwks","value":{...}}, e.g. the one Conjur holds now) into one
// public-keys value. A key listed twice with the same id and modulus is
// kept once; one id naming two different keys, a non-RSA key, a private
// key (a "d" member), or a file that is not such JSON is an error naming the
// file and key.
func Merge(inputs []Input) (PublicKeys, error) {
	if len(inputs) == 0 {
		return PublicKeys{}, errors.New("no JWKS files to merge: name one file per manager, e.g. `conjur-swarm jwks --merge m1.json m2.json m3.json`")
	}
	out := PublicKeys{Type: "jwks", Value: JWKS{Keys: []JWK{}}}
	seen := map[string]JWK{}
	from := map[string]string{}
	for _, in := range inputs {
		keys, err := parseInput(in)
		if err != nil {
			return PublicKeys{}, err
		}
		for _, k := range keys {
			if prev, ok := seen[k.Kid]; ok {
				if prev.N != k.N || prev.E != k.E {
					return PublicKeys{}, fmt.Errorf("%s: key id %q is also in %s with a different key: two managers' keys cannot share an id; regenerate one of them or drop the stale file", in.Name, k.Kid, from[k.Kid])
				}
				continue
			}
			seen[k.Kid], from[k.Kid] = k, in.Name
			out.Value.Keys = append(out.Value.Keys, k)
		}
	}
	return out, nil
}

// inputKey is a key as a merge input lists it: a JWK, and the private
// exponent a private JWK would carry, which must not be there.
type inputKey struct {
	JWK
	D json.RawMessage `json:"d"`
}

// parseInput reads one merge input's keys, checked.
func parseInput(in Input) ([]JWK, error) {
	if len(in.Data) > MaxInput {
		return nil, fmt.Errorf("%s: %d bytes, more than %d: not a JWKS file", in.Name, len(in.Data), MaxInput)
	}
	var doc struct {
		Type  *string          `json:"type"`
		Value *json.RawMessage `json:"value"`
		Keys  *[]inputKey      `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(in.Data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS: %v (give the output of `conjur-swarm jwks` or a public-keys value)", in.Name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: text after the JSON document: give one JWKS per file", in.Name)
	}
	keys := doc.Keys
	if doc.Type != nil || doc.Value != nil {
		if doc.Type == nil || *doc.Type != "jwks" || doc.Value == nil {
			return nil, fmt.Errorf(`%s: a public-keys value must be {"type":"jwks","value":{"keys":[...]}}`, in.Name)
		}
		var v struct {
			Keys []inputKey `json:"keys"`
		}
		if err := json.Unmarshal(*doc.Value, &v); err != nil {
			return nil, fmt.Errorf("%s: value is not a JWKS: %v", in.Name, err)
		}
		keys = &v.Keys
	}
	if keys == nil || len(*keys) == 0 {
		return nil, fmt.Errorf(`%s: no keys: a JWKS is {"keys":[...]} with at least one key`, in.Name)
	}
	out := make([]JWK, len(*keys))
	for i, k := range *keys {
		if len(k.D) > 0 {
			return nil, fmt.Errorf("%s: key %d (kid %q) holds a private key (\"d\"): only public keys belong in public-keys; this file must not leave its manager, and a key that has should be rotated out", in.Name, i+1, k.Kid)
		}
		if err := checkJWK(k.JWK); err != nil {
			return nil, fmt.Errorf("%s: key %d: %w", in.Name, i+1, err)
		}
		out[i] = k.JWK
	}
	return out, nil
}

// checkJWK refuses a key Conjur could not verify RS256 with.
func checkJWK(k JWK) error {
	switch {
	case k.Kid == "":
		return errors.New("no kid: every key needs its id (the plugin's JWTs name it)")
	case k.Kty != "RSA":
		return fmt.Errorf("kid %q: kty %q: Conjur's authn-jwt verifies RS256 only, so keys must be RSA", k.Kid, k.Kty)
	case k.Alg != "" && k.Alg != Algorithm:
		return fmt.Errorf("kid %q: alg %q: the plugin signs %s", k.Kid, k.Alg, Algorithm)
	}
	n, err1 := base64.RawURLEncoding.DecodeString(k.N)
	e, err2 := base64.RawURLEncoding.DecodeString(k.E)
	if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
		return fmt.Errorf("kid %q: n and e must be unpadded base64url", k.Kid)
	}
	if bits := new(big.Int).SetBytes(n).BitLen(); bits < keyBits {
		return fmt.Errorf("kid %q: a %d-bit modulus, fewer than %d", k.Kid, bits, keyBits)
	}
	return nil
}
