package policy

import (
	"errors"
	"strings"
	"testing"
)

// renderCases pin each format's exact bytes (also FuzzRenderRoundTrip
// seeds): members are given sorted by name, as Resolve lists them.
var renderCases = []struct {
	name    string
	format  string
	tmpl    string // for FormatTemplate
	members []string
	values  []string
	want    string
	wantErr string // ValueError text, instead of want
}{
	{name: "ok/json", format: FormatJSON, members: []string{"password", "user"}, values: []string{`p"a\ss$1` + "\n\t<&>", "app"},
		want: `{"password":"p\"a\\ss$1\n\t<&>","user":"app"}`},
	{name: "ok/json-unicode-and-controls", format: FormatJSON, members: []string{"a", "b"}, values: []string{"ünï €\u2028", "\x00\x1f\x7f"},
		want: `{"a":"ünï €\u2028","b":"\u0000\u001f` + "\x7f" + `"}`},
	{name: "fail/json-binary", format: FormatJSON, members: []string{"a", "key"}, values: []string{"x", "\xff\x00\x01"},
		wantErr: `bundle member "key": the value is not valid UTF-8 text and format json holds text only; use format template with base64, or decode the value`},
	{name: "ok/yaml", format: FormatYAML, members: []string{"NO", "password", "user"}, values: []string{"n", `it's "q" \ $x: #y`, "app\nline2\ttab"},
		want: "\"NO\": \"n\"\npassword: \"it's \\\"q\\\" \\\\ $x: #y\"\nuser: \"app\\nline2\\ttab\"\n"},
	{name: "ok/yaml-unicode-and-controls", format: FormatYAML, members: []string{"a"}, values: []string{"é\u0085\u2028\ufeff\x00\x1b\x7f\U0001F600"},
		want: "a: \"é\\u0085\\u2028\\ufeff\\x00\\x1b\\x7f\U0001F600\"\n"},
	{name: "fail/yaml-binary", format: FormatYAML, members: []string{"tls"}, values: []string{"\x00\x01\xff"},
		wantErr: `bundle member "tls": the value is not valid UTF-8 text and format yaml holds text only; use format template with base64, or decode the value`},
	{name: "ok/dotenv", format: FormatDotenv, members: []string{"DB_PASSWORD", "DB_USER"}, values: []string{"a\\b\"c$HOME\nd\re\tf 'g'", "app"},
		want: `DB_PASSWORD='a\b"c$HOME` + "\nd\re\tf " + `'\''g'\'''` + "\n" + `DB_USER='app'` + "\n"},
	{name: "ok/dotenv-unicode", format: FormatDotenv, members: []string{"A"}, values: []string{"ünï"}, want: "A='ünï'\n"},
	{name: "ok/dotenv-substitutions-stay-text", format: FormatDotenv, members: []string{"A", "B"}, values: []string{"`touch pwned` $(touch pwned) ${HOME} \\", "'; touch pwned; '"},
		want: "A='`touch pwned` $(touch pwned) ${HOME} \\'\n" + `B=''\''; touch pwned; '\'''` + "\n"},
	{name: "fail/dotenv-nul", format: FormatDotenv, members: []string{"A", "B"}, values: []string{"ok", "a\x00b"},
		wantErr: `bundle member "B": the value holds a NUL byte, which an environment variable cannot hold`},
	{name: "ok/template-dsn", format: FormatTemplate, tmpl: "postgres://{{ .user }}:{{ urlquery .password }}@db:5432/app",
		members: []string{"password", "user"}, values: []string{"p@ss/w:rd ?&", "app"}, want: "postgres://app:p%40ss%2Fw%3Ard+%3F%26@db:5432/app"},
	{name: "ok/template-functions", format: FormatTemplate, tmpl: `{"k": {{ json .a }}, "b": "{{ base64 .bin }}", "d": "{{ base64decode .enc }}", "t": "{{ trim .sp }}"}`,
		members: []string{"a", "bin", "enc", "sp"}, values: []string{"x\"y\n", "\xff\x00", "aGk", "  hi \n"}, want: `{"k": "x\"y\n", "b": "/wA=", "d": "hi", "t": "hi"}`},
	{name: "ok/template-binary-passes", format: FormatTemplate, tmpl: "{{ .key }}", members: []string{"key"}, values: []string{"\x00\xff"}, want: "\x00\xff"},
	{name: "fail/template-bad-base64decode", format: FormatTemplate, tmpl: "{{ base64decode .enc }}", members: []string{"enc"}, values: []string{"not base64!!"},
		wantErr: "the bundle template failed at line 1, column 3, in {{base64decode .enc}}: base64decode: the value is not standard base64 (bad input at byte 3); store base64 text or remove decode"},
	{name: "fail/template-error-hides-value", format: FormatTemplate, tmpl: "{{ index .a 99 }}", members: []string{"a"}, values: []string{"secret-value-1"},
		wantErr: "the bundle template failed at line 1, column 3, in {{index .a 99}} (the cause is not shown, as it may quote a value); check the template with `conjur-swarm policy validate` and the values' form"},
	{name: "fail/template-empty-output", format: FormatTemplate, tmpl: "{{ trim .a }}", members: []string{"a"}, values: []string{" \n"},
		wantErr: "the rendered secret is empty and Swarm needs 1 byte to 500 KiB; check the template"},
}

func TestRenderFormats(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			d := renderDecision(t, tc.format, tc.tmpl, tc.members)
			vals := make([][]byte, len(tc.values))
			for i, v := range tc.values {
				vals[i] = []byte(v)
			}
			out, err := d.Render(vals)
			if tc.wantErr != "" {
				var ve *ValueError
				if !errors.As(err, &ve) || err.Error() != tc.wantErr {
					t.Fatalf("Render error %v (output %q)\nwant %s", err, out, tc.wantErr)
				}
				for _, v := range tc.values {
					if len(v) >= 4 && strings.Contains(err.Error(), v) {
						t.Fatalf("the error quotes a value: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if string(out) != tc.want {
				t.Fatalf("Render:\n got %q\nwant %q", out, tc.want)
			}
			if tc.format != FormatTemplate {
				got := readBack(t, tc.format, out)
				for i, m := range tc.members {
					if got[m] != tc.values[i] {
						t.Errorf("member %s reads back as %q, want %q", m, got[m], tc.values[i])
					}
				}
			}
		})
	}
}

// renderDecision builds an allowed decision with a bundle of the given
// format and members through Parse, as the plugin would.
func renderDecision(t *testing.T, format, tmpl string, members []string) Decision {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n  - name: r\n    match: {}\n    bundle:\n      format: " + format + "\n      variables:\n")
	for _, m := range members {
		b.WriteString("        " + m + ": apps/" + m + "\n")
	}
	if tmpl != "" {
		b.WriteString("      template: '" + strings.ReplaceAll(tmpl, "'", "''") + "'\n")
	}
	d := mustParse(t, b.String()).Resolve(Request{SecretName: "s"})
	if !d.Allow || d.Bundle == nil {
		t.Fatalf("no bundle: %+v", d)
	}
	return d
}

func TestRenderShape(t *testing.T) {
	const dyn = `{"AccessKeyId":"AKIA0001","SecretAccessKey":"c2VjcmV0\n","Expiry":3600,"Nested":{"a": [1, 2]},"Null":null}`
	for _, tc := range []struct {
		name, field, decode, value, want, wantErr string
	}{
		{name: "ok/field-string", field: "AccessKeyId", value: dyn, want: "AKIA0001"},
		{name: "ok/field-number-as-json", field: "Expiry", value: dyn, want: "3600"},
		{name: "ok/field-object-compact", field: "Nested", value: dyn, want: `{"a":[1,2]}`},
		{name: "ok/field-null", field: "Null", value: dyn, want: "null"},
		{name: "ok/field-then-decode", field: "SecretAccessKey", decode: "base64", value: dyn, want: "secret"},
		{name: "ok/decode-padded", decode: "base64", value: "aGk=", want: "hi"},
		{name: "ok/decode-unpadded-with-newline", decode: "base64", value: "aGk\n", want: "hi"},
		{name: "ok/decode-binary", decode: "base64", value: "AP8=", want: "\x00\xff"},
		{name: "fail/field-missing", field: "Token", value: dyn, wantErr: `the JSON object has no top-level member "Token" (it has 5 members); check field`},
		{name: "fail/field-not-object", field: "k", value: `["secret-array-value"]`, wantErr: `the value is not a JSON object, so field "k" cannot be taken from it; store a JSON object or remove field`},
		{name: "fail/field-not-json", field: "k", value: `secret-text-value`, wantErr: `the value is not a JSON object, so field "k" cannot be taken from it (not JSON: syntax error at byte 1); store a JSON object or remove field`},
		{name: "fail/decode-not-base64", decode: "base64", value: "secret*value", wantErr: "the value is not standard base64 (bad input at byte 6); store base64 text or remove decode"},
		{name: "fail/decode-url-alphabet", decode: "base64", value: "_-8", wantErr: "the value is not standard base64 (bad input at byte 0); store base64 text or remove decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decision{Allow: true, Variable: "apps/x", Field: tc.field, Decode: tc.decode}
			out, err := d.Render([][]byte{[]byte(tc.value)})
			if tc.wantErr != "" {
				var ve *ValueError
				if !errors.As(err, &ve) || err.Error() != tc.wantErr || ve.Member != "" {
					t.Fatalf("Render error %v\nwant %s", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") && !strings.Contains(tc.wantErr, "secret") {
					t.Fatalf("the error quotes the value: %v", err)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Fatalf("Render = %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

func TestRenderMemberShapeNamesMember(t *testing.T) {
	d := mustParse(t, bundlePolicy).Resolve(Request{SecretName: "shop_db_config", SecretLabels: labels(stackLabel, "shop"), ServiceLabels: labels(stackLabel, "shop")})
	_, err := d.Render([][]byte{[]byte(`{"Other":"x"}`), []byte("pw"), []byte("app")})
	want := `bundle member "aws_key": the JSON object has no top-level member "SecretAccessKey" (it has 1 members); check field`
	if err == nil || err.Error() != want {
		t.Fatalf("Render error %v, want %s", err, want)
	}
	out, err := d.Render([][]byte{[]byte(`{"SecretAccessKey":"k/ey"}`), []byte("pw"), []byte("app")})
	if err != nil || string(out) != `{"aws_key":"k/ey","password":"pw","user":"app"}` {
		t.Fatalf("Render = %q, %v", out, err)
	}
}

func TestRenderLimits(t *testing.T) {
	d := renderDecision(t, FormatJSON, "", []string{"a", "b"})
	half := []byte(strings.Repeat("x", MaxSecretBytes/2))
	_, err := d.Render([][]byte{half, half})
	if err == nil || !strings.Contains(err.Error(), "Swarm accepts less than 512000 (500 KiB)") {
		t.Fatalf("Render of 500 KiB: %v", err)
	}
	d = renderDecision(t, FormatTemplate, `{{ .a }}{{ .a }}{{ .a }}`, []string{"a"})
	_, err = d.Render([][]byte{half})
	if err == nil || !strings.Contains(err.Error(), "the rendered secret reached 500 KiB") {
		t.Fatalf("Render of a template past 500 KiB: %v", err)
	}
	if _, err := d.Render(nil); err == nil {
		t.Fatal("Render with too few values: no error")
	}
}
