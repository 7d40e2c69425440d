package driver

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
	"github.com/cyberark/conjur-swarm/internal/policy"
)

// bundleMapping holds a bundle of each kind the driver tests use.
const bundleMapping = `version: 1
within: [apps/]
rules:
  - name: db-env
    match: {secret: db_env}
    bundle:
      format: dotenv
      variables:
        DB_USER: apps/db/user
        DB_PASSWORD: apps/db/password
        AWS_KEY: {variable: apps/db/aws, field: SecretAccessKey}
  - name: db-json
    match: {secret: db_json}
    bundle:
      format: json
      variables: {user: apps/db/user, key: apps/db/binary}
  - name: db-dsn
    match: {secret: db_dsn}
    bundle:
      format: template
      variables: {user: apps/db/user, password: apps/db/password}
      template: "postgres://{{ .user }}:{{ urlquery .password }}@db:5432/app"
  - name: db-missing
    match: {secret: db_missing}
    bundle:
      format: json
      variables: {user: apps/db/user, zzz: apps/db/missing, aaa: apps/db/password}
  - name: db-env-node-a
    match: {secret: db_env_node_a}
    bundle:
      format: dotenv
      variables: {DB_USER: apps/db/user, DB_PASSWORD: apps/db/password}
    allow: {node: node-a}
  - name: signing-key
    match: {secret: signing_key}
    variable: apps/db/aws
    field: SigningKey
    decode: base64
  - name: not-json
    match: {secret: not_json}
    variable: apps/db/password
    field: x
`

const (
	bundlePassword = `pa"ss$word-9c1d`
	bundleAWSKey   = "aws/secret+key=77"
)

func bundleFetcher() *fakeConjur {
	return &fakeConjur{values: map[string][]byte{
		"apps/db/user":     []byte("app_user"),
		"apps/db/password": []byte(bundlePassword),
		"apps/db/aws":      []byte(`{"AccessKeyId":"AKIA1","SecretAccessKey":"` + bundleAWSKey + `","SigningKey":"` + base64.StdEncoding.EncodeToString([]byte("signing-bytes\x00\xff")) + `"}`),
		"apps/db/binary":   {0xff, 0xfe, 0x00, 0x42},
	}}
}

func bundlePolicy(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("bundle.yml", []byte(bundleMapping))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGetSecretBundle(t *testing.T) {
	allValues := []string{"app_user", bundlePassword, bundleAWSKey, "AKIA1", "signing-bytes"}
	for _, tc := range []struct {
		name        string
		secret      string
		want        string
		wantCode    string
		wantErr     string // substring of Err
		wantMembers []string
		wantVar     string // the audit record's variable
	}{
		{name: "ok/dotenv", secret: "db_env", want: "AWS_KEY='aws/secret+key=77'\nDB_PASSWORD='pa\"ss$word-9c1d'\nDB_USER='app_user'\n",
			wantMembers: []string{"apps/db/aws", "apps/db/password", "apps/db/user"}},
		{name: "ok/template-dsn", secret: "db_dsn", want: "postgres://app_user:pa%22ss%24word-9c1d@db:5432/app",
			wantMembers: []string{"apps/db/password", "apps/db/user"}},
		{name: "ok/field-and-decode", secret: "signing_key", want: "signing-bytes\x00\xff", wantVar: "apps/db/aws"},
		{name: "fail/member-missing-fails-whole-get", secret: "db_missing", wantCode: "NOT_FOUND",
			wantErr:     `conjur-swarm [NOT_FOUND] secret "db_missing" (variable "apps/db/missing", rule "db-missing"): bundle member "zzz": variable apps/db/missing is not found; check the id`,
			wantMembers: []string{"apps/db/password", "apps/db/user", "apps/db/missing"}, wantVar: "apps/db/missing"},
		{name: "fail/denied-by-allow-lists-members", secret: "db_env_node_a", wantCode: "DENIED",
			wantErr:     `conjur-swarm [DENIED] secret "db_env_node_a" (rule "db-env-node-a"): rule "db-env-node-a" denies: allow.node: node is "n1", want "node-a"`,
			wantMembers: []string{"apps/db/password", "apps/db/user"}},
		{name: "fail/binary-member-in-json", secret: "db_json", wantCode: "VALUE_UNUSABLE",
			wantErr:     `conjur-swarm [VALUE_UNUSABLE] secret "db_json" (variable "apps/db/binary", rule "db-json"): bundle member "key": the value is not valid UTF-8 text and format json holds text only`,
			wantMembers: []string{"apps/db/binary", "apps/db/user"}, wantVar: "apps/db/binary"},
		{name: "fail/field-of-non-json", secret: "not_json", wantCode: "VALUE_UNUSABLE",
			wantErr: `conjur-swarm [VALUE_UNUSABLE] secret "not_json" (variable "apps/db/password", rule "not-json"): the value is not a JSON object, so field "x" cannot be taken from it`,
			wantVar: "apps/db/password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := bundleFetcher()
			d, logs := newTestDriver(t, f, bundlePolicy(t))
			res := d.GetSecret(context.Background(), pluginapi.Request{SecretName: tc.secret, ServiceName: "web", NodeID: "n1"})
			if tc.wantCode == "" {
				if res.Err != "" || string(res.Value) != tc.want || !res.DoNotReuse {
					t.Fatalf("got %q (Err %q), want %q", res.Value, res.Err, tc.want)
				}
			} else if len(res.Value) != 0 || !strings.HasPrefix(res.Err, tc.wantErr) {
				t.Fatalf("got %d bytes, Err %q\nwant no value and Err starting %q", len(res.Value), res.Err, tc.wantErr)
			}
			members := len(tc.wantMembers)
			if tc.wantCode == "DENIED" && (len(f.refs) != 0 || len(f.batches) != 0) {
				t.Errorf("a denied bundle was fetched: Gets %v, batches %v", f.refs, f.batches)
			}
			if members > 0 && tc.wantCode != "DENIED" {
				// One batch call with every member.
				if len(f.batches) != 1 || len(f.batches[0]) != members || len(f.refs) != members {
					t.Errorf("batch calls %v, Gets %d; want one batch of %d", f.batches, len(f.refs), members)
				}
			}
			entries := logs.FilterLoggerName("audit").All()
			if len(entries) != 1 {
				t.Fatalf("%d audit lines, want 1", len(entries))
			}
			fields := entries[0].ContextMap()
			var got []string
			if m, ok := fields["members"].([]any); ok {
				for _, x := range m {
					got = append(got, fmt.Sprint(x))
				}
			}
			want := slices.Clone(tc.wantMembers)
			slices.Sort(want)
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("audit members (-want +got):\n%s", diff)
			}
			if fields["variable"] != tc.wantVar {
				t.Errorf("audit variable %q, want %q", fields["variable"], tc.wantVar)
			}
			st := d.Status()
			if len(st.Recent) != 1 || len(st.Recent[0].Members) != len(tc.wantMembers) {
				t.Errorf("status record %+v, want %d members", st.Recent, len(tc.wantMembers))
			}
			text := fmt.Sprint(fields) + res.Err + fmt.Sprintf("%+v", st)
			for _, v := range allValues {
				if strings.Contains(text, v) {
					t.Errorf("a value appears in the log, Err or status: %q", v)
				}
			}
		})
	}
}
