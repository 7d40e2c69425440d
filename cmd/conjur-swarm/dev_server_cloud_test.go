package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDevServerCloud(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jwks := write("jwks.json", `{"keys":[]}`)
	good := write("aws.json", `[{"access_key_id":"AKID","secret_access_key":"s","arn":"arn:aws:sts::123456789012:assumed-role/r/s"}]`)
	noARN := write("aws-bad.json", `[{"access_key_id":"AKID","secret_access_key":"s"}]`)
	tests := []struct {
		name    string
		f       devServerFlags
		wantErr string
	}{
		{"ok/both", devServerFlags{providerKeys: []string{"https://accounts.google.com=" + jwks}, awsIdentities: good}, ""},
		{"fail/provider-keys-without-file", devServerFlags{providerKeys: []string{"https://accounts.google.com"}}, "want ISSUER=FILE"},
		{"fail/aws-identity-without-arn", devServerFlags{awsIdentities: noARN}, "entry 0 needs access_key_id, secret_access_key and an arn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, ids, err := devServerCloud(&tt.f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || keys["https://accounts.google.com"] != `{"keys":[]}` || len(ids) != 1 || ids[0].ARN != "arn:aws:sts::123456789012:assumed-role/r/s" {
				t.Fatalf("keys %v ids %v err %v", keys, ids, err)
			}
		})
	}
}
