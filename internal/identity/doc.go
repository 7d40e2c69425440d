// Package identity holds this manager's JWT signing keys and signs the short
// JWTs with which the plugin authenticates to Conjur's authn-jwt as the
// identity the mapping chose for a Get (CONJUR_SWARM_IDENTITY=per-request).
//
// A Store keeps the keys in a state directory (0700, owned by the plugin's
// user; each key a 0600 PKCS#8 PEM file): the current key, which signs, and
// an optional next key, published in the JWKS before it signs (rotation).
// The keys never leave the directory: only their public halves are printed,
// as a JWKS for Conjur's public-keys variable (see Merge).
//
// The algorithm is RS256 with 2048-bit RSA keys: Conjur 1.24's authn-jwt
// accepts only RS256, RS384 and RS512, so an ES256 key would be refused.
package identity
