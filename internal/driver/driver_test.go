package driver

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/conjur"
	"github.com/cyberark/conjur-swarm/internal/errcode"
	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

const demoValue = "s3cr3t-demo-VALUE-7f1e"

func newTestDriver(t *testing.T, f *fakeConjur, r Resolver, mutate ...func(*Options)) (*Driver, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	opts := Options{
		Resolver:      r,
		Account:       "dev",
		ApplianceURLs: []string{"https://conjur.test"},
		PolicyStatus:  fakePolicyStatus{},
		Logger:        zap.New(core),
	}
	if f != nil { // never a typed nil in the interface
		opts.Conjur = f
	}
	for _, m := range mutate {
		m(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d, logs
}

// Values at Swarm's size limit, made once.
var (
	hugeValue    = bytes.Repeat([]byte("x"), MaxValueBytes)
	largestValue = bytes.Repeat([]byte("y"), MaxValueBytes-1)
)

func demoFetcher() *fakeConjur {
	return &fakeConjur{values: map[string][]byte{
		"apps/demo/db-password": []byte(demoValue),
		"apps/demo/empty":       {},
		"apps/demo/huge":        hugeValue,
		"apps/demo/largest":     largestValue,
	}}
}

func labelled(variable string) pluginapi.Request {
	return pluginapi.Request{
		SecretName:   "db_password",
		SecretLabels: map[string]string{"conjur.variable": variable},
		ServiceID:    "svc1",
		ServiceName:  "web",
		TaskID:       "task1",
		TaskImage:    "nginx:1",
		NodeID:       "node1",
	}
}

func TestGetSecret(t *testing.T) {
	conjurErr := func(code errcode.Code, msg string) error {
		return &conjur.Error{Code: code, Variable: "apps/demo/db-password", Msg: msg, Cause: errors.New("http 500")}
	}
	tests := []struct {
		name      string
		req       pluginapi.Request
		fetchErr  error
		resolver  func(policy.Request) policy.Decision
		noFetcher bool
		want      pluginapi.Response
		wantCode  errcode.Code
		wantErr   string // substring of Err
	}{
		{
			name: "ok/value and do-not-reuse",
			req:  labelled("apps/demo/db-password"),
			want: pluginapi.Response{Value: []byte(demoValue), DoNotReuse: true},
		},
		{
			name: "ok/largest value Swarm accepts",
			req:  labelled("apps/demo/largest"),
			want: pluginapi.Response{Value: largestValue, DoNotReuse: true},
		},
		{
			name:     "fail/no rule matched",
			req:      pluginapi.Request{SecretName: "plain"},
			wantCode: errcode.Denied,
			wantErr:  "conjur-swarm [DENIED] secret \"plain\": no rule matched; test the request with `conjur-swarm policy explain`",
		},
		{
			name: "fail/allow condition failed names rule and variable",
			req:  labelled("apps/demo/db-password"),
			resolver: func(policy.Request) policy.Decision {
				return policy.Decision{Rule: "stack-secrets", Variable: "apps/s/k", Reason: `rule "stack-secrets": service label com.docker.stack.namespace is not "s"`, Condition: "allow.service_labels[com.docker.stack.namespace]"}
			},
			wantCode: errcode.Denied,
			wantErr:  `conjur-swarm [DENIED] secret "db_password" (variable "apps/s/k", rule "stack-secrets"): rule "stack-secrets": service label`,
		},
		{
			name:     "fail/empty value",
			req:      labelled("apps/demo/empty"),
			wantCode: errcode.ValueUnusable,
			wantErr:  `conjur-swarm [VALUE_UNUSABLE] secret "db_password" (variable "apps/demo/empty", rule "by-label"): Conjur returned an empty value`,
		},
		{
			name:     "fail/value of 500 KiB",
			req:      labelled("apps/demo/huge"),
			wantCode: errcode.ValueUnusable,
			wantErr:  "the value is 512000 bytes and Swarm accepts less than 512000",
		},
		{
			name:     "fail/not found passes Conjur's code and message",
			req:      labelled("apps/demo/missing"),
			wantCode: "NOT_FOUND",
			wantErr:  `conjur-swarm [NOT_FOUND] secret "db_password" (variable "apps/demo/missing", rule "by-label"): variable apps/demo/missing is not found; check the id`,
		},
		{name: "fail/no credential", req: labelled("apps/demo/db-password"), fetchErr: conjurErr("NO_CREDENTIAL", ""), wantCode: "NO_CREDENTIAL", wantErr: "run the bootstrap agent"},
		{name: "fail/auth refused", req: labelled("apps/demo/db-password"), fetchErr: conjurErr("AUTH_REFUSED", "Conjur refused host/x (401); hand over a new key"), wantCode: "AUTH_REFUSED", wantErr: "hand over a new key"},
		{name: "fail/forbidden", req: labelled("apps/demo/db-password"), fetchErr: conjurErr("FORBIDDEN", ""), wantCode: "FORBIDDEN", wantErr: "permit execute"},
		{name: "fail/unavailable", req: labelled("apps/demo/db-password"), fetchErr: conjurErr("UNAVAILABLE", ""), wantCode: "UNAVAILABLE", wantErr: "no Conjur appliance URL answered"},
		{name: "fail/timeout", req: labelled("apps/demo/db-password"), fetchErr: conjurErr("TIMEOUT", ""), wantCode: "TIMEOUT", wantErr: "CONJUR_SWARM_FETCH_TIMEOUT"},
		{name: "fail/tls", req: labelled("apps/demo/db-password"), fetchErr: conjurErr("TLS", ""), wantCode: "TLS", wantErr: "CONJUR_CERT_FILE"},
		{name: "fail/context deadline", req: labelled("apps/demo/db-password"), fetchErr: context.DeadlineExceeded, wantCode: "TIMEOUT", wantErr: "[TIMEOUT]"},
		{name: "fail/unexpected error", req: labelled("apps/demo/db-password"), fetchErr: errors.New("boom"), wantCode: errcode.Internal, wantErr: "[INTERNAL]"},
		{
			name:      "fail/not configured",
			req:       labelled("apps/demo/db-password"),
			noFetcher: true,
			wantCode:  errcode.NotConfigured,
			wantErr:   `conjur-swarm [NOT_CONFIGURED] secret "db_password" (variable "apps/demo/db-password", rule "by-label"): CONJUR_APPLIANCE_URL is not set; set the plugin's Conjur settings`,
		},
		{
			name: "fail/mapping names another account",
			req:  labelled("apps/demo/db-password"),
			resolver: func(policy.Request) policy.Decision {
				return policy.Decision{Allow: true, Rule: "r", Account: "other", Variable: "apps/demo/db-password"}
			},
			wantCode: errcode.NotConfigured,
			wantErr:  `names Conjur account "other" but the plugin authenticates to "dev"`,
		},
		{
			name:     "fail/invalid request",
			req:      pluginapi.Request{SecretName: "bad\x01name"},
			wantCode: errcode.BadRequest,
			wantErr:  "SecretName holds a control character",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := demoFetcher()
			f.err = tc.fetchErr
			res := &fakeResolver{fn: tc.resolver}
			d, logs := newTestDriver(t, f, res, func(o *Options) {
				if tc.noFetcher {
					o.Conjur, o.ConfigProblem = nil, "CONJUR_APPLIANCE_URL is not set"
				}
			})
			got := d.GetSecret(context.Background(), tc.req)
			if tc.wantErr == "" {
				if !bytes.Equal(tc.want.Value, got.Value) || got.Err != "" || got.DoNotReuse != tc.want.DoNotReuse {
					t.Fatalf("answer %v, want %v", got, tc.want)
				}
			} else {
				if got.Value != nil || !strings.Contains(got.Err, tc.wantErr) {
					t.Fatalf("answer %v, want Err containing %q", got, tc.wantErr)
				}
				if !strings.HasPrefix(got.Err, "conjur-swarm ["+string(tc.wantCode)+"] ") {
					t.Errorf("Err %q does not start with the code %s", got.Err, tc.wantCode)
				}
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("%d log lines, want exactly 1 audit line: %v", len(entries), entries)
			}
			fields := entries[0].ContextMap()
			if fields["code"] != string(tc.wantCode) {
				t.Errorf("logged code %q, want %q", fields["code"], tc.wantCode)
			}
			if want := pluginapi.LogText(tc.req.SecretName); fields["secret"] != want {
				t.Errorf("logged secret %q, want %q", fields["secret"], want)
			}
			st := d.Status()
			if st.Counters.Requests != 1 || len(st.Recent) != 1 || st.Recent[0].Code != tc.wantCode {
				t.Errorf("status counters %+v recent %+v", st.Counters, st.Recent)
			}
		})
	}
}

func TestGetSecretPassesVersionAndNoCache(t *testing.T) {
	f := demoFetcher()
	res := &fakeResolver{fn: func(policy.Request) policy.Decision {
		return policy.Decision{Allow: true, Rule: "pinned", Variable: "apps/demo/db-password", Version: 3, DoNotReuse: false}
	}}
	f.flags = conjur.Value{Coalesced: true, Cached: true}
	d, logs := newTestDriver(t, f, res)
	got := d.GetSecret(context.Background(), labelled("ignored"))
	if got.Err != "" || got.DoNotReuse {
		t.Fatalf("answer %v, want the value with DoNotReuse false", got)
	}
	if diff := cmp.Diff(conjur.Ref{ID: "apps/demo/db-password", Version: 3, NoCache: false}, f.lastRef()); diff != "" {
		t.Errorf("ref (-want +got):\n%s", diff)
	}
	fields := logs.All()[0].ContextMap()
	want := map[string]any{
		"secret": "db_password", "service": "web", "service_id": "svc1", "task": "task1", "node": "node1",
		"image": "nginx:1", "rule": "pinned", "variable": "apps/demo/db-password", "decision": "allow",
		"code": "", "coalesced": true, "cached": true, "do_not_reuse": false,
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("audit field %s = %v, want %v", k, fields[k], v)
		}
	}
	if _, ok := fields["duration"].(time.Duration); !ok {
		t.Errorf("audit line has no duration: %v", fields)
	}
}

func TestHandleGetSecretBadBody(t *testing.T) {
	d, logs := newTestDriver(t, demoFetcher(), &fakeResolver{})
	got := d.HandleGetSecret(context.Background(), strings.NewReader(`{"SecretName": 7}`))
	if !strings.HasPrefix(got.Err, "conjur-swarm [BAD_REQUEST] ") || !strings.Contains(got.Err, `field "SecretName" has the wrong type`) {
		t.Fatalf("Err %q", got.Err)
	}
	if n := logs.FilterField(zap.String("code", "BAD_REQUEST")).Len(); n != 1 {
		t.Errorf("%d BAD_REQUEST audit lines, want 1", n)
	}
}

func TestInvalidRequestIsAuditedWithClippedNames(t *testing.T) {
	d, logs := newTestDriver(t, demoFetcher(), &fakeResolver{})
	long := strings.Repeat("n", 5000)
	got := d.HandleGetSecret(context.Background(), strings.NewReader(`{"SecretName":"`+long+`","ServiceName":"web"}`))
	if !strings.Contains(got.Err, "[BAD_REQUEST]") || !strings.Contains(got.Err, "SecretName is 5000 bytes long") || len(got.Err) > 1000 {
		t.Fatalf("Err (%d bytes) %.300q", len(got.Err), got.Err)
	}
	line := logs.All()[0].ContextMap()
	if line["service"] != "web" || !strings.HasSuffix(line["secret"].(string), "...[clipped]") || len(line["secret"].(string)) > 300 {
		t.Errorf("audit line %v", line)
	}
}

func TestRecentDecisionsRing(t *testing.T) {
	d, _ := newTestDriver(t, demoFetcher(), &fakeResolver{}, func(o *Options) { o.RecentDecisions = 3 })
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		d.GetSecret(context.Background(), pluginapi.Request{SecretName: name})
	}
	st := d.Status()
	var names []string
	for _, r := range st.Recent {
		names = append(names, r.Secret)
	}
	if diff := cmp.Diff([]string{"e", "d", "c"}, names); diff != "" {
		t.Errorf("recent, newest first (-want +got):\n%s", diff)
	}
	if st.Counters.Requests != 5 || st.Counters.Denied != 5 || st.Counters.ByCode[errcode.Denied] != 5 {
		t.Errorf("counters %+v", st.Counters)
	}
}

func TestNewRejectsMissingOptions(t *testing.T) {
	_, err := New(Options{RequestTimeout: -1})
	for _, want := range []string{"Resolver is nil", "Logger is nil", "RequestTimeout is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New error %v lacks %q", err, want)
		}
	}
}

func TestResponseNeverPrintsValue(t *testing.T) {
	r := pluginapi.Response{Value: []byte(demoValue), DoNotReuse: true}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if out := sprintf(verb, r); strings.Contains(out, demoValue) || strings.Contains(out, "733363") {
			t.Errorf("%s printed the value: %s", verb, out)
		}
	}
	var buf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("x", zap.Any("r", r), zap.Stringer("s", r))
	if strings.Contains(buf.String(), demoValue) || strings.Contains(buf.String(), base64.StdEncoding.EncodeToString([]byte(demoValue))[:12]) {
		t.Errorf("zap printed the value: %s", buf.String())
	}
}

func TestGetSecretAuditsTheIdentity(t *testing.T) {
	res := &fakeResolver{fn: func(policy.Request) policy.Decision {
		return policy.Decision{Allow: true, Rule: "stack-secrets", Variable: "apps/demo/db-password", Identity: "shop"}
	}}
	d, logs := newTestDriver(t, demoFetcher(), res)
	if got := d.GetSecret(context.Background(), labelled("ignored")); got.Err != "" {
		t.Fatalf("answer %v", got)
	}
	if got := logs.All()[0].ContextMap()["identity"]; got != "shop" {
		t.Errorf("audit identity = %v, want shop", got)
	}
	if st := d.Status(); len(st.Recent) != 1 || st.Recent[0].Identity != "shop" {
		t.Errorf("status recent %+v, want identity shop", st.Recent)
	}
}
