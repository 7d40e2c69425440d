package conjurdev

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// authn-iam as Conjur 1.24's Authentication::AuthnIam::Authenticator does
// it: the body is the JSON of the headers of a SigV4-signed STS
// GetCallerIdentity request; Conjur checks which headers are signed, sends
// the request to STS, and compares the caller's ARN with the login: the
// login's last two parts must be <aws account>/<role name>. The dev server
// cannot call AWS: it verifies the signature itself against the test
// credentials in Options.IAM and answers with their ARN, as STS would.

// IAMIdentity is an AWS identity the dev server's stand-in for STS knows.
type IAMIdentity struct {
	AccessKeyID     string
	SecretAccessKey redact.String
	SessionToken    redact.String // "" for long-term credentials
	// ARN is what GetCallerIdentity answers, e.g.
	// arn:aws:sts::123456789012:assumed-role/conjur-role/i-0abc (the login
	// host/.../123456789012/conjur-role matches it).
	ARN string
}

// iamRequiredKeys are the headers Conjur lets a request sign (REQUIRED_KEYS),
// plus those listed in the optional-signed-headers variable.
var iamRequiredKeys = []string{"host", "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}

func errAWSHeaders(format string, args ...any) *authnError {
	return authnErr("Errors::Authentication::AuthnIam::InvalidAWSHeaders", "CONJ00018E", "Invalid or expired AWS headers: "+format, args...)
}

func (s *Server) authenticateIAM(w http.ResponseWriter, r *http.Request) {
	req := authnRequest{authenticator: "authn-iam", service: r.PathValue("service"), account: r.PathValue("account"), login: r.PathValue("id")}
	body, err := readCredentials(r)
	if err == nil {
		s.mu.RLock()
		err = s.authenticateLocked(req, func(*resource) error { return s.checkIAM(req, body) })
		s.mu.RUnlock()
	}
	s.answerAuthn(w, r, req.name(), req.login, err)
}

// checkIAM is AuthnIam::Authenticator#valid?.
func (s *Server) checkIAM(req authnRequest, body []byte) error {
	optional, _, err := s.serviceVar(req, "optional-signed-headers")
	if err != nil {
		return err
	}
	headers, err := iamSignedHeaders(body, optional)
	if err != nil {
		return err
	}
	arn, err := s.stsCallerIdentity(headers)
	if err != nil {
		return err
	}
	if !iamRoleMatches(req.login, arn) {
		return errInvalidCredentials()
	}
	return nil
}

var signedHeadersRE = regexp.MustCompile(`SignedHeaders=([A-Za-z0-9;_-]+)`)

// iamSignedHeaders is extract_signed_headers: every signed header present,
// none outside the permitted ones, the host an amazonaws.com one.
func iamSignedHeaders(body []byte, optional string) (map[string]string, error) {
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, authnErr("JSON::ParserError", "", "the body is not the JSON of the signed headers")
	}
	in := map[string]string{}
	for k, v := range raw {
		if sv, ok := v.(string); ok {
			in[strings.ToLower(k)] = sv
		}
	}
	m := signedHeadersRE.FindStringSubmatch(in["authorization"])
	if m == nil {
		return nil, errAWSHeaders("Failed to extract signed headers")
	}
	signed := strings.Split(strings.ToLower(m[1]), ";")
	var missing, unexpected []string
	allowed := slices.Clone(iamRequiredKeys)
	for _, h := range strings.Split(optional, ";") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			allowed = append(allowed, h)
		}
	}
	for _, h := range signed {
		if _, ok := in[h]; !ok {
			missing = append(missing, h)
		}
		if !slices.Contains(allowed, h) {
			unexpected = append(unexpected, h)
		}
	}
	if len(missing) > 0 {
		return nil, errAWSHeaders("Missing required signed headers: %s", strings.Join(missing, ", "))
	}
	if len(unexpected) > 0 {
		return nil, errAWSHeaders("Unexpected signed headers found: %s. Please use only permitted headers in the signature. "+
			"If you need to include optional headers, please ensure they are secure and then add them to the authenticator configuration.",
			strings.Join(unexpected, ", "))
	}
	if h := in["host"]; h != "" && !strings.HasSuffix(strings.Split(h, ":")[0], ".amazonaws.com") {
		return nil, errAWSHeaders("Host header validation failed")
	}
	out := map[string]string{}
	for k, v := range in {
		if slices.Contains(allowed, k) {
			out[k] = v
		}
	}
	return out, nil
}

var (
	stsRegionalRE = regexp.MustCompile(`sts.([\w\-]+).amazonaws.com`)
	credRegionRE  = regexp.MustCompile(`Credential=[^/]+/[^/]+/([^/]+)/`)
	awsRegionRE   = regexp.MustCompile(`\A([a-z]{2}(-gov)?-[a-z]+-\d)\z`)
)

// stsRegion is extract_sts_region: "global" for sts.amazonaws.com, the
// region of a regional host, else the credential scope's.
func stsRegion(headers map[string]string) (string, error) {
	host := headers["host"]
	region := ""
	switch m, c := stsRegionalRE.FindStringSubmatch(host), credRegionRE.FindStringSubmatch(headers["authorization"]); {
	case host == "sts.amazonaws.com":
		region = "global"
	case m != nil:
		region = m[1]
	case c != nil:
		region = c[1]
	}
	if region != "global" && !awsRegionRE.MatchString(region) {
		return "", errAWSHeaders("Failed to extract AWS region from authorization header")
	}
	return region, nil
}

// stsCallerIdentity stands in for Conjur's call to STS: the region's
// endpoint first, the global one as a fallback for us-east-1. It returns
// the ARN of the identity whose credentials signed the request.
func (s *Server) stsCallerIdentity(headers map[string]string) (string, error) {
	region, err := stsRegion(headers)
	if err != nil {
		return "", err
	}
	arn, err := s.stsVerify(headers, region)
	if err != nil && region == "us-east-1" {
		if global, gErr := s.stsVerify(headers, "global"); gErr == nil {
			return global, nil
		}
	}
	return arn, err
}

// sigV4Auth is a parsed Authorization header.
type sigV4Auth struct {
	keyID, date, region, service string
	signed                       []string
	signature                    string
}

var sigV4RE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?SignedHeaders=([a-z0-9;_-]+), ?Signature=([0-9a-f]+)$`)

// stsVerify is what STS checks of a GetCallerIdentity request sent to the
// endpoint of region: the credentials known, the scope's region the
// endpoint's, the date within 15 minutes, the signature.
func (s *Server) stsVerify(headers map[string]string, region string) (string, error) {
	m := sigV4RE.FindStringSubmatch(headers["authorization"])
	if m == nil {
		return "", errAWSHeaders("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
	}
	a := sigV4Auth{keyID: m[1], date: m[2], region: m[3], service: m[4], signed: strings.Split(m[5], ";"), signature: m[6]}
	id, ok := s.iamIdentity(a.keyID)
	if !ok || (id.SessionToken != "" && headers["x-amz-security-token"] != id.SessionToken.Reveal()) {
		return "", errAWSHeaders("The security token included in the request is invalid.")
	}
	endpointRegion := region
	if region == "global" {
		endpointRegion = "us-east-1"
	}
	if a.region != endpointRegion || a.service != "sts" {
		return "", errAWSHeaders("Credential should be scoped to a valid region.")
	}
	if err := checkAmzDate(headers["x-amz-date"], s.now()); err != nil {
		return "", err
	}
	want := sigV4Signature(id.SecretAccessKey.Reveal(), a, headers)
	if subtle.ConstantTimeCompare([]byte(want), []byte(a.signature)) != 1 {
		return "", errAWSHeaders("The request signature we calculated does not match the signature you provided. " +
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return id.ARN, nil
}

func (s *Server) iamIdentity(keyID string) (IAMIdentity, bool) {
	for _, id := range s.iam {
		if id.AccessKeyID == keyID {
			return id, true
		}
	}
	return IAMIdentity{}, false
}

// checkAmzDate is STS's clock check: the signing time within 15 minutes
// either way.
func checkAmzDate(v string, now time.Time) error {
	const layout = "20060102T150405Z"
	t, err := time.Parse(layout, v)
	if err != nil {
		return errAWSHeaders("The request must contain a valid X-Amz-Date header.")
	}
	if t.Before(now.Add(-15 * time.Minute)) {
		return errAWSHeaders("Signature expired: %s is now earlier than %s (%s - 15 min.)", v, now.Add(-15*time.Minute).UTC().Format(layout), now.UTC().Format(layout))
	}
	if t.After(now.Add(15 * time.Minute)) {
		return errAWSHeaders("Signature not yet current: %s is still later than %s (%s + 15 min.)", v, now.Add(15*time.Minute).UTC().Format(layout), now.UTC().Format(layout))
	}
	return nil
}

// sigV4Signature computes the SigV4 signature of GET
// /?Action=GetCallerIdentity&Version=2011-06-15 with an empty body, over
// the headers a signed.
func sigV4Signature(secret string, a sigV4Auth, headers map[string]string) string {
	signed := slices.Clone(a.signed)
	sort.Strings(signed)
	var canon strings.Builder
	canon.WriteString("GET\n/\nAction=GetCallerIdentity&Version=2011-06-15\n")
	for _, h := range signed {
		fmt.Fprintf(&canon, "%s:%s\n", h, strings.Join(strings.Fields(headers[h]), " "))
	}
	emptyHash := sha256.Sum256(nil)
	fmt.Fprintf(&canon, "\n%s\n%s", strings.Join(signed, ";"), hex.EncodeToString(emptyHash[:]))
	canonHash := sha256.Sum256([]byte(canon.String()))
	scope := a.date + "/" + a.region + "/" + a.service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + headers["x-amz-date"] + "\n" + scope + "\n" + hex.EncodeToString(canonHash[:])
	key := []byte("AWS4" + secret)
	for _, part := range []string{a.date, a.region, a.service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	return hex.EncodeToString(hmacSHA256(key, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// iamRoleMatches is iam_role_matches?: the login, less its last two
// parts, followed by the ARN's account and role name.
func iamRoleMatches(login, arn string) bool {
	parts := strings.Split(arn, ":")
	if len(parts) < 6 {
		return false
	}
	account := parts[4]
	resource := strings.Split(parts[5], "/")
	if len(resource) < 2 {
		return false
	}
	segs := strings.Split(login, "/")
	prefix := ""
	if len(segs) > 2 {
		prefix = strings.Join(segs[:len(segs)-2], "/")
	}
	return login == prefix+"/"+account+"/"+resource[1]
}
