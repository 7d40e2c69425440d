package conjur

import (
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cyberark/conjur-swarm/internal/redact"
)

// The example credentials and time of AWS's published SigV4 examples.
const (
	awsExampleKeyID  = "AKIDEXAMPLE"
	awsExampleSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	emptySHA256      = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

var awsExampleTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC) // 20150830T123600Z

// TestSigV4AgainstAWSExamples checks the signer against AWS's own
// definition, each step where AWS publishes it:
//
//   - "iam-list-users": the worked example of AWS's General Reference,
//     "Signature Version 4 signing process" (Task 1 "Create a canonical
//     request", Task 3 "Calculate the signature",
//     docs.aws.amazon.com/general/latest/gr/sigv4-create-canonical-request.html
//     and sigv4-calculate-signature.html): GET
//     https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08 with a
//     content-type, in us-east-1 for the service iam. It is a query API
//     call signed like GetCallerIdentity.
//   - "get-vanilla": the first case of AWS's Signature Version 4 test
//     suite (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html,
//     aws-sig-v4-test-suite/get-vanilla): GET / of example.amazonaws.com,
//     region us-east-1, service "service".
func TestSigV4AgainstAWSExamples(t *testing.T) {
	tests := []struct {
		name           string
		req            sigV4Request
		scope          sigV4Scope
		canonical      string // "" = AWS publishes only its hash
		canonicalHash  string
		signingKey     string // "" = not published for this case
		wantAuthHeader string
	}{
		{
			name: "iam-list-users",
			req: sigV4Request{method: "GET", path: "/", query: url.Values{"Version": {"2010-05-08"}, "Action": {"ListUsers"}},
				headers:     [][2]string{{"Host", "iam.amazonaws.com"}, {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}, {"X-Amz-Date", "20150830T123600Z"}},
				payloadHash: emptySHA256},
			scope: sigV4Scope{at: awsExampleTime, region: "us-east-1", service: "iam"},
			canonical: "GET\n/\nAction=ListUsers&Version=2010-05-08\n" +
				"content-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n" +
				"content-type;host;x-amz-date\n" + emptySHA256,
			canonicalHash: "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
			signingKey:    "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9",
			wantAuthHeader: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, " +
				"Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
		},
		{
			name: "get-vanilla",
			req: sigV4Request{method: "GET", path: "/", headers: [][2]string{{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
				payloadHash: emptySHA256},
			scope:         sigV4Scope{at: awsExampleTime, region: "us-east-1", service: "service"},
			canonical:     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + emptySHA256,
			canonicalHash: "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
			wantAuthHeader: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, " +
				"Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			canonical := tt.req.canonicalRequest()
			if canonical != tt.canonical {
				t.Errorf("canonical request:\n%q\nwant\n%q", canonical, tt.canonical)
			}
			sts := tt.scope.stringToSign(canonical)
			if want := "AWS4-HMAC-SHA256\n20150830T123600Z\n" + tt.scope.String() + "\n" + tt.canonicalHash; sts != want {
				t.Errorf("string to sign:\n%q\nwant\n%q", sts, want)
			}
			if k := hex.EncodeToString(tt.scope.signingKey(awsExampleSecret)); tt.signingKey != "" && k != tt.signingKey {
				t.Errorf("signing key %s, want %s", k, tt.signingKey)
			}
			if got := tt.scope.authorization(tt.req, awsExampleKeyID, awsExampleSecret); got != tt.wantAuthHeader {
				t.Errorf("Authorization:\n%s\nwant\n%s", got, tt.wantAuthHeader)
			}
		})
	}
}

// TestAWSURIEncode: SigV4's encoding keeps only A-Z a-z 0-9 - _ . ~ (and
// '/' in a path), with upper-case hex, spaces as %20.
func TestAWSURIEncode(t *testing.T) {
	for in, want := range map[string]string{
		"GetCallerIdentity": "GetCallerIdentity", "a b+c": "a%20b%2Bc", "x/y": "x%2Fy", "~._-": "~._-", "é": "%C3%A9", "=&": "%3D%26",
	} {
		if got := awsURIEncode(in, true); got != want {
			t.Errorf("awsURIEncode(%q) = %q, want %q", in, got, want)
		}
	}
	if got := awsURIEncode("/a b/c", false); got != "/a%20b/c" {
		t.Errorf("path: %q", got)
	}
}

// TestIAMLoginBody: the body Conjur's authn-iam takes is the JSON of the
// signed GetCallerIdentity headers: the global endpoint signed for
// us-east-1 by default, a regional one for its region; the session token
// signed and sent when there is one; nothing Conjur does not permit.
func TestIAMLoginBody(t *testing.T) {
	creds := awsCredentials{keyID: awsExampleKeyID, secret: awsExampleSecret}
	tests := []struct {
		name, region, token, host, scope, signed string
	}{
		{"ok/global-endpoint", "", "", "sts.amazonaws.com", "/20150830/us-east-1/sts/aws4_request", "host;x-amz-date"},
		{"ok/regional-endpoint", "eu-west-1", "", "sts.eu-west-1.amazonaws.com", "/20150830/eu-west-1/sts/aws4_request", "host;x-amz-date"},
		{"ok/session-token", "", "tok", "sts.amazonaws.com", "/20150830/us-east-1/sts/aws4_request", "host;x-amz-date;x-amz-security-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := creds
			c.token = redact.String(tt.token)
			raw, err := iamLoginBody(c, tt.region, awsExampleTime)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]string
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{"host": true, "x-amz-date": true, "authorization": true, "x-amz-security-token": tt.token != ""}
			for k := range body {
				if !want[k] {
					t.Errorf("the body has %q, which Conjur does not permit here", k)
				}
			}
			auth := body["authorization"]
			if body["host"] != tt.host || body["x-amz-date"] != "20150830T123600Z" || body["x-amz-security-token"] != tt.token ||
				!strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE"+tt.scope+", SignedHeaders="+tt.signed+", Signature=") {
				t.Fatalf("body %v", body)
			}
		})
	}
}
