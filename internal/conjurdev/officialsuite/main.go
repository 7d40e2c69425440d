// Command officialsuite runs conjur-api-go's own integration tests (its
// conjurapi package, at the version go.mod requires) against the dev
// server, and prints how many top-level tests passed, failed and were
// skipped, and the names of the failing ones:
//
//	go run ./internal/conjurdev/officialsuite [-run REGEXP] [-v]
//
// The suite is copied out of the module cache (it is read-only there) and
// run with the environment its tests read: CONJUR_APPLIANCE_URL,
// CONJUR_ACCOUNT=conjur (TestClient_JwtAuthenticate names that account),
// CONJUR_AUTHN_LOGIN=admin, CONJUR_AUTHN_API_KEY, a JWT with its
// PUBLIC_KEYS for the authn-jwt test, and a client certificate for the
// authn-cert test (see certEnv). Tests of Enterprise and Cloud
// features fail or skip by design: docs/dev-server.md lists them.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cyberark/conjur-swarm/internal/conjurdev"
)

const module = "github.com/cyberark/conjur-api-go"

func main() {
	run := flag.String("run", "", "only the tests matching this regexp (go test -run)")
	verbose := flag.Bool("v", false, "print the output of every failing test")
	flag.Parse()
	if err := suite(*run, *verbose, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "officialsuite:", err)
		os.Exit(1)
	}
}

func suite(run string, verbose bool, out io.Writer) error {
	srv, err := conjurdev.New(conjurdev.Options{Account: "conjur"})
	if err != nil {
		return err
	}
	l, err := srv.Listen("127.0.0.1:0", false)
	if err != nil {
		return err
	}
	defer func() { _ = l.Close() }()
	proxy, err := clientElsewhere(l.URL)
	if err != nil {
		return err
	}
	defer proxy.Close()
	tl, err := srv.Listen("127.0.0.1:0", true)
	if err != nil {
		return err
	}
	defer func() { _ = tl.Close() }()
	env, err := suiteEnv(srv, proxy.URL)
	if err != nil {
		return err
	}
	certDir, err := os.MkdirTemp("", "officialsuite-cert-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(certDir) }()
	cenv, err := certEnv(certDir, tl.URL, tl.CAPEM)
	if err != nil {
		return err
	}
	env = append(env, cenv...)
	dir, err := copySuite()
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	args := []string{"test", "-count=1", "-json", "./conjurapi/"}
	if run != "" {
		args = append(args, "-run", run)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env, cmd.Stderr = dir, append(os.Environ(), env...), os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("go test: %w", err)
	}
	res := tally(stdout)
	_ = cmd.Wait() // go test exits 1 when a test fails; the tally says which
	return res.print(out, verbose)
}

// suiteEnv is the environment the suite's tests read.
func suiteEnv(srv *conjurdev.Server, url string) ([]string, error) {
	iss, err := conjurdev.NewJWTIssuer("jwt-server")
	if err != nil {
		return nil, err
	}
	jwt, err := iss.Sign(map[string]any{"email": "workload@example.com", "sub": "test-workload", "aud": "conjur"}, time.Hour)
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "officialsuite-home-")
	if err != nil {
		return nil, err
	}
	return []string{
		"CONJUR_APPLIANCE_URL=" + url, "CONJUR_ACCOUNT=conjur", "CONJUR_AUTHN_LOGIN=admin",
		"CONJUR_AUTHN_API_KEY=" + srv.AdminAPIKey(), "JWT=" + jwt, "PUBLIC_KEYS=" + iss.JWKS(), "HOME=" + home,
	}, nil
}

// copySuite copies the module's source out of the module cache into a
// writable directory.
func copySuite() (string, error) {
	b, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w (run from this repository, after go mod download)", module, err)
	}
	src := strings.TrimSpace(string(b))
	dst, err := os.MkdirTemp("", "officialsuite-")
	if err != nil {
		return "", err
	}
	return dst, filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// results are the top-level tests by outcome, and each one's output.
type results struct {
	outcome map[string]string // test -> pass, fail, skip
	output  map[string]*strings.Builder
}

func tally(r io.Reader) results {
	res := results{outcome: map[string]string{}, output: map[string]*strings.Builder{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Test == "" {
			continue
		}
		top, _, _ := strings.Cut(ev.Test, "/")
		switch ev.Action {
		case "output":
			if res.output[top] == nil {
				res.output[top] = &strings.Builder{}
			}
			res.output[top].WriteString(ev.Output)
		case "pass", "fail", "skip":
			if ev.Test == top {
				res.outcome[top] = ev.Action
			}
		}
	}
	return res
}

func (res results) print(out io.Writer, verbose bool) error {
	count := map[string]int{}
	var listed []string
	for test, o := range res.outcome {
		count[o]++
		if o != "pass" {
			listed = append(listed, test)
		}
	}
	sort.Strings(listed)
	for _, f := range listed {
		fmt.Fprintln(out, strings.ToUpper(res.outcome[f]), f)
		if verbose && res.outcome[f] == "fail" && res.output[f] != nil {
			fmt.Fprint(out, res.output[f].String())
		}
	}
	_, err := fmt.Fprintf(out, "conjurapi against the dev server: %d passed, %d failed, %d skipped\n", count["pass"], count["fail"], count["skip"])
	return err
}

// clientElsewhere is a loopback proxy in front of the dev server that
// says, with X-Forwarded-For, that the client is at 192.0.2.10: in
// Conjur's own CI the client runs in another container, and the suite's
// host factory test counts on the client not being at 127.0.0.1 (a token
// limited to 127.0.0.1 must refuse it). Conjur trusts 127.0.0.1 as a
// proxy, and so does the dev server.
func clientElsewhere(target string) (*httptest.Server, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host // as the dev server's clients send it
		r.Out.Header.Set("X-Forwarded-For", "192.0.2.10")
	}}
	return httptest.NewServer(rp), nil
}
