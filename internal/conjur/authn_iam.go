package conjur

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/response"
	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/redact"
)

// AuthnIAM is CONJUR_AUTHN_TYPE's value for authn-iam: the plugin signs an
// STS GetCallerIdentity request with the AWS credentials of the instance
// role (from the instance metadata service, IMDSv2) or of the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), and hands
// the signed headers to Conjur's authn-iam/<ServiceID>, which sends them to
// STS and matches the caller's account and role to the host
// CONJUR_AUTHN_LOGIN names (its last two parts: <account id>/<role name>).
const AuthnIAM = "iam"

const (
	// imdsBase is where EC2's instance metadata service answers.
	imdsBase = "http://169.254.169.254"
	// imdsTokenTTL is the lifetime asked for an IMDSv2 session token: one
	// is asked for each credential fetch and used at once.
	imdsTokenTTL = "300"
	// iamRefreshBefore: instance-role credentials are fetched again this
	// long before their Expiration (IMDS has the next ones by then).
	iamRefreshBefore = 5 * time.Minute
	// iamKeepOnFailure: when that fetch fails, the credentials in hand are
	// used while they stay valid at least this long.
	iamKeepOnFailure = time.Minute
	// imdsMaxWait bounds each IMDS request (the AWS SDKs wait 1 s too): a
	// token PUT whose answer is dropped (a container past the instance's
	// hop limit) then ends in an error that says so, well before the fetch
	// timeout.
	imdsMaxWait = time.Second
	// stsVersion is GetCallerIdentity's API version.
	stsVersion = "2011-06-15"
)

// awsRegionRE is the region shape Conjur's authn-iam accepts.
var awsRegionRE = regexp.MustCompile(`^[a-z]{2}(-gov)?-[a-z]+-\d$`)

// awsAccountRoleRE is the end of an authn-iam host id: the AWS account id
// (12 digits) and the role name, which Conjur compares with the caller's.
var awsAccountRoleRE = regexp.MustCompile(`/[0-9]{12}/[\w+=,.@-]+$`)

// awsCredentials are AWS credentials to sign with.
type awsCredentials struct {
	keyID, secret, token redact.String
	expires              time.Time // zero: no expiry known (the environment's)
	role                 string    // the instance role they are of; "" for the environment's
}

// iamCache holds the instance role's credentials between logins.
type iamCache struct {
	mu    sync.Mutex
	creds awsCredentials
}

// iamProblems lists what authn-iam's settings need, and the AWS settings
// the other modes cannot have.
func (c Config) iamProblems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.AuthnType != AuthnIAM {
		if c.IAMRegion != "" || c.AWSAccessKeyID != "" || c.AWSSecretAccessKey != "" || c.AWSSessionToken != "" {
			bad("CONJUR_AUTHN_IAM_REGION or AWS credentials are set but CONJUR_AUTHN_TYPE is not iam: set CONJUR_AUTHN_TYPE=iam, or clear them")
		}
		return errs
	}
	if c.Login != "" && !awsAccountRoleRE.MatchString(c.Login) {
		bad("CONJUR_AUTHN_LOGIN %q does not end with <AWS account id>/<IAM role name>: authn-iam matches those two parts with the caller's, e.g. host/swarm/123456789012/swarm-manager", c.Login)
	}
	if c.IAMRegion != "" && !awsRegionRE.MatchString(c.IAMRegion) {
		bad("CONJUR_AUTHN_IAM_REGION %q is not an AWS region: give one such as eu-west-1 (the regional STS endpoint), or leave it empty for the global one", c.IAMRegion)
	}
	if (c.AWSAccessKeyID == "") != (c.AWSSecretAccessKey == "") {
		bad("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set: set both, or neither to use the instance role")
	}
	if c.AWSSessionToken != "" && c.AWSAccessKeyID == "" {
		bad("AWS_SESSION_TOKEN is set without AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set the temporary credentials' key pair with it, or clear it")
	}
	return errs
}

// iamCredentials returns the credentials to sign with now: the
// environment's, else the instance role's, fetched again from IMDS once
// they are within iamRefreshBefore of their Expiration. No lock is held
// across the fetch: two logins at once may both fetch.
func (s *session) iamCredentials(ctx context.Context) (awsCredentials, error) {
	if s.cfg.AWSAccessKeyID != "" {
		return awsCredentials{keyID: s.cfg.AWSAccessKeyID, secret: s.cfg.AWSSecretAccessKey, token: s.cfg.AWSSessionToken}, nil
	}
	now := s.now()
	s.iam.mu.Lock()
	held := s.iam.creds
	s.iam.mu.Unlock()
	if held.keyID != "" && now.Before(held.expires.Add(-iamRefreshBefore)) {
		return held, nil
	}
	fresh, err := s.imdsCredentials(ctx)
	if err != nil {
		if held.keyID != "" && now.Before(held.expires.Add(-iamKeepOnFailure)) {
			s.log.Warn("the instance role's credentials could not be refreshed; the current ones are used until they expire",
				zap.String("role", held.role), zap.Time("expires", held.expires), zap.String("code", string(CodeOf(err))), zap.Error(err))
			return held, nil
		}
		return awsCredentials{}, err
	}
	s.iam.mu.Lock()
	s.iam.creds = fresh
	s.iam.mu.Unlock()
	return fresh, nil
}

// imdsCredentials asks EC2's instance metadata service (IMDSv2) for the
// instance role's credentials: a session token (PUT), the role's name,
// then its credentials. Every step is bounded, with no proxy and no
// redirect (metadataRequest); no error quotes an answer.
func (s *session) imdsCredentials(ctx context.Context) (awsCredentials, error) {
	base := s.cfg.metadataBase()
	wait := min(s.cfg.FetchTimeout/3, imdsMaxWait)
	tok, err := metadataRequest(ctx, http.MethodPut, base+"/latest/api/token",
		http.Header{"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": {imdsTokenTTL}}, wait)
	if err != nil {
		return awsCredentials{}, &Error{Code: errcode.NoCredential, Cause: err,
			Msg: fmt.Sprintf("the EC2 instance metadata service at %s gave no session token (%s): run the manager on EC2 with the metadata service enabled (IMDSv2), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; in a container on a bridge network, raise the instance's hop limit (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2)", base, netText(err.Error()))}
	}
	hdr := http.Header{"X-Aws-Ec2-Metadata-Token": {string(bytes.TrimSpace(tok))}}
	const credPath = "/latest/meta-data/iam/security-credentials/"
	roles, err := metadataRequest(ctx, http.MethodGet, base+credPath, hdr, wait)
	role := strings.TrimSpace(strings.SplitN(string(roles), "\n", 2)[0])
	if err != nil || role == "" || strings.ContainsAny(role, "/?# \t") {
		what := "no role name"
		if err != nil {
			what = netText(err.Error())
		}
		return awsCredentials{}, &Error{Code: errcode.NoCredential, Cause: err,
			Msg: fmt.Sprintf("the EC2 instance metadata service at %s names no IAM role for this instance (%s): attach an instance profile with the role Conjur's host is named after (aws ec2 associate-iam-instance-profile), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", base, what)}
	}
	body, err := metadataRequest(ctx, http.MethodGet, base+credPath+url.PathEscape(role), hdr, wait)
	if err != nil {
		return awsCredentials{}, &Error{Code: errcode.NoCredential, Cause: err,
			Msg: fmt.Sprintf("the EC2 instance metadata service at %s gave no credentials for the role %s (%s): check the instance profile (aws ec2 describe-iam-instance-profile-associations)", base, role, netText(err.Error()))}
	}
	creds, err := parseIMDSCredentials(body)
	clear(body)
	if err != nil {
		return awsCredentials{}, &Error{Code: errcode.NoCredential, Cause: err,
			Msg: fmt.Sprintf("the EC2 instance metadata service at %s answered the credentials of the role %s unusably (%v): retry; if it persists, check the instance profile", base, role, err)}
	}
	if !s.now().Before(creds.expires) {
		return awsCredentials{}, &Error{Code: errcode.NoCredential,
			Msg: fmt.Sprintf("the EC2 instance metadata service at %s gave credentials of the role %s that expired at %s: check this host's clock (now %s)", base, role, creds.expires.UTC().Format(time.RFC3339), s.now().UTC().Format(time.RFC3339))}
	}
	creds.role = role
	return creds, nil
}

// imdsCredentialDoc is the JSON of .../security-credentials/<role>.
type imdsCredentialDoc struct {
	Code            string
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	Token           string
	Expiration      string
}

// parseIMDSCredentials reads the instance role's credentials as IMDS
// answers them. Its errors name the field at fault, never a value.
func parseIMDSCredentials(body []byte) (awsCredentials, error) {
	var d imdsCredentialDoc
	if err := json.Unmarshal(body, &d); err != nil {
		return awsCredentials{}, errors.New("not a JSON object of credentials")
	}
	if d.Code != "" && d.Code != "Success" {
		return awsCredentials{}, errors.New("its Code is not Success")
	}
	for _, f := range []struct{ name, v string }{{"AccessKeyId", d.AccessKeyID}, {"SecretAccessKey", d.SecretAccessKey}, {"Token", d.Token}} {
		if f.v == "" || strings.ContainsAny(f.v, " \t\r\n") {
			return awsCredentials{}, fmt.Errorf("%s is missing or malformed", f.name)
		}
	}
	exp, err := time.Parse(time.RFC3339, d.Expiration)
	if err != nil {
		return awsCredentials{}, errors.New("the Expiration field is missing or not an RFC 3339 time")
	}
	return awsCredentials{keyID: redact.String(d.AccessKeyID), secret: redact.String(d.SecretAccessKey), token: redact.String(d.Token), expires: exp}, nil
}

// stsHost is the STS endpoint the signed request names: the global one
// (signed for us-east-1), or region's.
func stsHost(region string) (host, scopeRegion string) {
	if region == "" {
		return "sts.amazonaws.com", "us-east-1"
	}
	return "sts." + region + ".amazonaws.com", region
}

// iamLoginBody is what Conjur's authn-iam takes: the JSON of the headers
// of an STS GetCallerIdentity request (GET, empty body) signed at at. It
// holds the signature and the session token: it goes to Conjur only.
func iamLoginBody(c awsCredentials, region string, at time.Time) ([]byte, error) {
	host, scopeRegion := stsHost(region)
	date := at.UTC().Format(amzDateLayout)
	headers := [][2]string{{"host", host}, {"x-amz-date", date}}
	if c.token != "" {
		headers = append(headers, [2]string{"x-amz-security-token", c.token.Reveal()})
	}
	empty := sha256.Sum256(nil)
	req := sigV4Request{method: http.MethodGet, path: "/", query: url.Values{"Action": {"GetCallerIdentity"}, "Version": {stsVersion}},
		headers: headers, payloadHash: hex.EncodeToString(empty[:])}
	scope := sigV4Scope{at: at, region: scopeRegion, service: "sts"}
	body := map[string]string{"authorization": scope.authorization(req, c.keyID.Reveal(), c.secret.Reveal())}
	for _, h := range headers {
		body[h[0]] = h[1]
	}
	return json.Marshal(body)
}

// iamAuthenticate logs in to ep's authn-iam/<ServiceID> as cfg.Login with
// a GetCallerIdentity request signed now. conjur-api-go builds the request
// (URL, host id encoding, content type); this package signs, sends it
// through its own transport and reads the answer as the library does.
func (s *session) iamAuthenticate(ctx context.Context, ep *endpoint) ([]byte, error) {
	creds, err := s.iamCredentials(ctx)
	if err != nil {
		return nil, err
	}
	body, err := iamLoginBody(creds, s.cfg.IAMRegion, s.now())
	if err != nil {
		return nil, &Error{Code: errcode.Internal, Cause: err, Msg: "the authn-iam request could not be encoded: report it"}
	}
	defer clear(body)
	conf := s.cfg.apiConfig(ep.url)
	conf.AuthnType, conf.ServiceID, conf.JWTHostID = AuthnIAM, s.cfg.ServiceID, s.cfg.Login
	c, err := conjurapi.NewClient(conf, apiTelemetry())
	if err != nil {
		return nil, settingsRefused("authn-iam", err)
	}
	req, err := c.IAMAuthenticateRequest(body)
	if err != nil {
		return nil, err
	}
	resp, err := s.bindHTTP(ctx).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return response.DataResponse(resp)
}

// iamRefused is Conjur's refusal of an authn-iam login, with what to check.
func (s *session) iamRefused(u string, status int, cause error) *Error {
	role := "the instance role"
	if s.cfg.AWSAccessKeyID != "" {
		role = "the role of AWS_ACCESS_KEY_ID's credentials"
	} else {
		s.iam.mu.Lock()
		if r := s.iam.creds.role; r != "" {
			role = "the instance role " + r
		}
		s.iam.mu.Unlock()
	}
	return &Error{Code: errcode.AuthRefused, Cause: cause,
		Msg: fmt.Sprintf("Conjur at %s refused the AWS identity for %s at authn-iam/%s (HTTP %d): check that the authenticator is enabled (CONJUR_AUTHENTICATORS), that the host id ends with the AWS account id and the name of %s (<account id>/<role name>) and may authenticate, and that this host's clock is right (STS refuses a signature more than 15 minutes off)", u, s.cfg.Login, s.cfg.ServiceID, status, role)}
}
