package conjur

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sort"
	"strings"
	"time"
)

// AWS Signature Version 4, as AWS's General Reference defines it ("Create
// a signed AWS API request"): a canonical request, a string to sign over
// its hash, and an HMAC-SHA256 signature with a key derived from the
// secret access key through the date, region and service. authn-iam needs
// it for one request only (STS GetCallerIdentity, whose signed headers the
// plugin hands to Conjur), so the package signs it itself rather than link
// the AWS SDK (docs/architecture.md: binary size).

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	amzDateLayout  = "20060102T150405Z"
)

// sigV4Request is the part of an HTTP request SigV4 signs.
type sigV4Request struct {
	method      string
	path        string     // absolute, not yet URI-encoded ("/" for STS)
	query       url.Values // the query parameters
	headers     [][2]string
	payloadHash string // hex SHA-256 of the body
}

// sigV4Scope is what a signature is scoped to: the day of the signing
// time, the region and the service.
type sigV4Scope struct {
	at      time.Time
	region  string
	service string
}

// date is the scope's day, YYYYMMDD in UTC.
func (s sigV4Scope) date() string { return s.at.UTC().Format("20060102") }

// String is the credential scope: date/region/service/aws4_request.
func (s sigV4Scope) String() string {
	return s.date() + "/" + s.region + "/" + s.service + "/aws4_request"
}

// canonicalRequest is step 1: method, URI, query, headers, the signed
// header names and the payload hash, one per line. Header names are lower
// case and sorted, values trimmed with inner runs of spaces made one.
func (r sigV4Request) canonicalRequest() string {
	var b strings.Builder
	b.WriteString(r.method + "\n")
	b.WriteString(awsURIEncode(r.path, false) + "\n")
	b.WriteString(canonicalQuery(r.query) + "\n")
	names, values := r.canonicalHeaders()
	for i, n := range names {
		b.WriteString(n + ":" + values[i] + "\n")
	}
	b.WriteString("\n" + strings.Join(names, ";") + "\n")
	b.WriteString(r.payloadHash)
	return b.String()
}

// signedHeaders is the SignedHeaders list of the Authorization header.
func (r sigV4Request) signedHeaders() string {
	names, _ := r.canonicalHeaders()
	return strings.Join(names, ";")
}

// canonicalHeaders are r's headers as SigV4 signs them: names lower case
// and sorted, the values of a repeated name joined with ',', each value
// trimmed with inner runs of blanks made one space.
func (r sigV4Request) canonicalHeaders() (names, values []string) {
	byName := map[string]string{}
	for _, h := range r.headers {
		n := strings.ToLower(strings.TrimSpace(h[0]))
		v := strings.Join(strings.Fields(h[1]), " ")
		if prev, ok := byName[n]; ok {
			v = prev + "," + v
		}
		byName[n] = v
	}
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		values = append(values, byName[n])
	}
	return names, values
}

// canonicalQuery sorts the parameters by encoded name, then value, each
// name=value URI-encoded.
func canonicalQuery(q url.Values) string {
	pairs := make([]string, 0, len(q))
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, awsURIEncode(k, true)+"="+awsURIEncode(v, true))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// awsURIEncode is SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~
// as %XX with upper-case hex; '/' kept unless encodeSlash.
func awsURIEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// stringToSign is step 2: the algorithm, the signing time, the scope and
// the hash of the canonical request.
func (s sigV4Scope) stringToSign(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return sigV4Algorithm + "\n" + s.at.UTC().Format(amzDateLayout) + "\n" + s.String() + "\n" + hex.EncodeToString(sum[:])
}

// signingKey is step 3: HMAC("AWS4"+secret, date), then the region, the
// service and "aws4_request", each keyed with the previous result.
func (s sigV4Scope) signingKey(secret string) []byte {
	k := []byte("AWS4" + secret)
	for _, part := range []string{s.date(), s.region, s.service, "aws4_request"} {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(part))
		k = m.Sum(nil)
	}
	return k
}

// signature is step 4: the hex HMAC of the string to sign.
func (s sigV4Scope) signature(secret, canonical string) string {
	m := hmac.New(sha256.New, s.signingKey(secret))
	m.Write([]byte(s.stringToSign(canonical)))
	return hex.EncodeToString(m.Sum(nil))
}

// authorization is the Authorization header of r signed in scope s with
// the key pair (keyID, secret).
func (s sigV4Scope) authorization(r sigV4Request, keyID, secret string) string {
	return sigV4Algorithm + " Credential=" + keyID + "/" + s.String() +
		", SignedHeaders=" + r.signedHeaders() + ", Signature=" + s.signature(secret, r.canonicalRequest())
}
