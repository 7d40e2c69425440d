package policy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dotenvShells are the shells that must read a dotenv bundle back exactly
// with `set -a; . FILE`: dash (the machine's /bin/sh) and bash, both in the
// machine image CI runs on (packages dash and bash). busybox ash is tried
// as well when a busybox binary is on PATH (package busybox, not in the
// image).
var dotenvShells = []struct {
	name     string
	argv     []string
	required bool
}{
	{"dash", []string{"dash"}, true},
	{"bash", []string{"bash", "--posix"}, true},
	{"busybox ash", []string{"busybox", "ash"}, false},
}

// sourceDotenv writes out to a file, sources it with each shell of
// dotenvShells in an empty environment and returns, per shell, the values
// of names it then holds. A required shell that is missing fails the test
// under CI=true and skips it otherwise.
func sourceDotenv(t *testing.T, out []byte, names []string) map[string]map[string]string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "bundle.env")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `set -a; . "$1" || exit 97; printf '%s\0'`
	for _, n := range names {
		script += ` "$` + n + `"`
	}
	got := map[string]map[string]string{}
	for _, sh := range dotenvShells {
		path, err := exec.LookPath(sh.argv[0])
		if err != nil {
			switch {
			case !sh.required:
				continue
			case os.Getenv("CI") == "true":
				t.Fatalf("%s is not installed, and the dotenv round trip needs it: apt-get install -y %s", sh.name, sh.argv[0])
			default:
				t.Skipf("%s is not installed (apt-get install -y %s); CI=true fails here", sh.name, sh.argv[0])
			}
		}
		args := append(append([]string{}, sh.argv[1:]...), "-c", script, "sh", file)
		cmd := exec.Command(path, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Fatalf("%s sourcing %q: %v, stderr %q", sh.name, out, err, stderr.String())
		}
		if left, _ := os.ReadDir(dir); len(left) != 1 {
			t.Fatalf("%s sourcing %q left %d files in its directory: the file ran a command", sh.name, out, len(left))
		}
		fields := strings.Split(stdout.String(), "\x00")
		if len(fields) != len(names)+1 {
			t.Fatalf("%s printed %d values for %d names", sh.name, len(fields)-1, len(names))
		}
		vals := map[string]string{}
		for i, n := range names {
			vals[n] = fields[i]
		}
		got[sh.name] = vals
	}
	return got
}

// parseDotenv reads the dotenv format's grammar, independently of the
// writer: NAME=WORD lines where WORD is single-quoted text ('...', in which
// every byte but ' stands for itself) and \' joined without spaces; it
// fails on anything else.
func parseDotenv(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("dotenv %q does not end with a newline", s)
	}
	for rest := s; rest != ""; {
		name, after, ok := strings.Cut(rest, "=")
		if !ok || !memberNameRE.MatchString(name) {
			t.Fatalf("dotenv %q: %q does not start with NAME=", s, rest)
		}
		var v strings.Builder
		i := 0
	word:
		for {
			switch {
			case strings.HasPrefix(after[i:], `\'`):
				v.WriteByte('\'')
				i += 2
			case strings.HasPrefix(after[i:], "'"):
				end := strings.IndexByte(after[i+1:], '\'')
				if end < 0 {
					t.Fatalf("dotenv %q: unclosed quote in %s", s, name)
				}
				v.WriteString(after[i+1 : i+1+end])
				i += end + 2
			case strings.HasPrefix(after[i:], "\n"):
				i++
				break word
			default:
				t.Fatalf("dotenv %q: %s's value has text outside quotes at %q", s, name, after[i:])
			}
		}
		if _, dup := out[name]; dup {
			t.Fatalf("dotenv %q: %s twice", s, name)
		}
		out[name] = v.String()
		rest = after[i:]
	}
	return out
}
