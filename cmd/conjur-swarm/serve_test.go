package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/goleak"
)

// TestServeDevNextStepWorks runs `serve --dev` in-process and then the exact
// `get` command it prints: it must return the demo value. Then `status`
// reports the decision, and cancelling the context stops serve cleanly.
func TestServeDevNextStepWorks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clearEnv(t)
	sock := filepath.Join(t.TempDir(), "conjur.sock")
	v := viper.New()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addSettingFlags(fs)
	if err := bindSettings(v, fs); err != nil {
		t.Fatal(err)
	}
	v.Set("socket", sock)
	v.Set("mapping_file", "../../docs/examples/mapping.yml")
	v.Set("log_level", "warn")
	cfg, err := loadConfig(v)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, cfg, serveOptions{dev: true, devDir: "../../docs/examples", prog: "conjur-swarm", out: &out, ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve --dev stopped: %v", err)
	}

	var getLines []string
	var statusLine string
	for _, l := range strings.Split(out.String(), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "conjur-swarm get "):
			getLines = append(getLines, l)
		case strings.HasPrefix(l, "conjur-swarm status "):
			statusLine = l
		}
	}
	if len(getLines) != 2 || statusLine == "" {
		t.Fatalf("serve --dev printed no next step (want two get commands and status):\n%s", out.String())
	}
	// The first returns one variable, the second the demo's dotenv bundle.
	for i, want := range []string{"demo-db-password-0001", "API_TOKEN='demo-api-token-0001'\n" +
		"AWS_SECRET_ACCESS_KEY='demo/aws+secret=0001'\n" +
		"DB_HOST='db.demo.internal'\n" +
		"DB_PASSWORD='demo-db-password-0001'\n" +
		"DB_USER='demo_app'\n"} {
		stdout, stderr, code := execCLI(strings.Fields(getLines[i])[1:]...)
		if stdout != want || code != 0 {
			t.Errorf("the printed get command %q gave %q, exit %d, stderr %s; want %q", getLines[i], stdout, code, stderr, want)
		}
	}
	status, _, _ := execCLI(strings.Fields(statusLine)[1:]...)
	for _, want := range []string{"Conjur           configured", "credential     env, fingerprint", "2 total: 2 allowed", "apps/demo/db-password", "apps/demo/aws-credentials"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// TestServeWithoutConjurSettings: the plugin starts with no Conjur settings
// and answers every request NOT_CONFIGURED, naming the settings to set.
func TestServeWithoutConjurSettings(t *testing.T) {
	clearEnv(t)
	sock := filepath.Join(t.TempDir(), "conjur.sock")
	cfg, err := load(t, map[string]string{"CONJUR_SWARM_SOCKET": sock, "CONJUR_SWARM_LOG_LEVEL": "error"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, cfg, serveOptions{ready: func() { close(ready) }}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	}
	stdout, stderr, code := execCLI("get", "--socket", sock, "--secret", "db", "--secret-label", "conjur.variable=apps/x")
	if stdout != "" || code != 1 {
		t.Errorf("get printed %q and exited %d, want nothing and 1", stdout, code)
	}
	for _, want := range []string{"conjur-swarm [NOT_CONFIGURED] secret \"db\"", "CONJUR_APPLIANCE_URL is not set"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("get's stderr lacks %q:\n%s", want, stderr)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// execCLI runs the root command in-process: stdout, stderr and the exit
// status main would choose.
func execCLI(args ...string) (string, string, int) {
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		code = 1
		var ee exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			stderr.WriteString("conjur-swarm: " + err.Error() + "\n")
		}
	}
	return stdout.String(), stderr.String(), code
}

func TestListenSocketRefusesALiveOne(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "conjur.sock")
	ln, err := listenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := listenSocket(sock); err == nil || !strings.Contains(err.Error(), "another process is serving on it") {
		t.Fatalf("second listen: %v", err)
	}
	notSock := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notSock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(notSock); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("listen on a file: %v", err)
	}
}

// startQuietPlugin runs serve with no Conjur settings on sock until stop.
func startQuietPlugin(t *testing.T, sock string) (stop func()) {
	t.Helper()
	return startPlugin(t, map[string]string{"CONJUR_SWARM_SOCKET": sock, "CONJUR_SWARM_LOG_LEVEL": "error"})
}

// startPlugin runs serve with the settings env until stop; it fails the
// test when serve stops before it listens.
func startPlugin(t *testing.T, env map[string]string) (stop func()) {
	t.Helper()
	cfg, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, cfg, serveOptions{ready: func() { close(ready) }}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// TestServeWithBrokenMapping: a mapping file that is broken at start does
// not stop the plugin (docker plugin enable would time out): it serves, and
// answers MAPPING_INVALID naming the file and the problem.
func TestServeWithBrokenMapping(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	sock, mapping := filepath.Join(dir, "conjur.sock"), filepath.Join(dir, "mapping.yml")
	if err := os.WriteFile(mapping, []byte("version: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := startPlugin(t, map[string]string{"CONJUR_SWARM_SOCKET": sock, "CONJUR_SWARM_LOG_LEVEL": "error", "CONJUR_SWARM_MAPPING_FILE": mapping})
	defer stop()
	_, stderr, code := execCLI("get", "--socket", sock, "--secret", "db", "--secret-label", "conjur.variable=apps/x")
	for _, want := range []string{`conjur-swarm [MAPPING_INVALID] secret "db"`, mapping + ":1:1: missing rules"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("get: exit %d, stderr lacks %q:\n%s", code, want, stderr)
		}
	}
	out, _, _ := execCLI("status", "--socket", sock)
	if !strings.Contains(out, "INVALID, no policy in force") || !strings.Contains(out, "problem") {
		t.Errorf("status does not say the mapping file is invalid:\n%s", out)
	}
}

// TestServeAuditSyslog: with CONJUR_SWARM_AUDIT_SYSLOG the decision of a
// GetSecret sent through the plugin socket reaches a syslog receiver as an
// RFC 5424 message holding the JSON record; with the receiver down, every
// request is still answered.
func TestServeAuditSyslog(t *testing.T) {
	clearEnv(t)
	t.Run("ok/record-reaches-the-receiver", func(t *testing.T) {
		rx, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		sock := filepath.Join(t.TempDir(), "conjur.sock")
		stop := startPlugin(t, map[string]string{"CONJUR_SWARM_SOCKET": sock, "CONJUR_SWARM_LOG_LEVEL": "error",
			"CONJUR_SWARM_AUDIT_SYSLOG": "udp://" + rx.LocalAddr().String()})
		defer stop()
		if _, _, code := execCLI("get", "--socket", sock, "--secret", "db_password", "--secret-label", "conjur.variable=apps/x"); code == 0 {
			t.Fatal("get succeeded without Conjur settings")
		}
		buf := make([]byte, 64<<10)
		_ = rx.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := rx.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no syslog message: %v", err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, "<83>1 ") || !strings.Contains(msg, " conjur-swarm ") ||
			!strings.Contains(msg, `"secret":"db_password"`) || !strings.Contains(msg, `"code":"NOT_CONFIGURED"`) {
			t.Fatalf("syslog message %q: want PRI 83 (authpriv.err), app conjur-swarm, the record's secret and code", msg)
		}
	})
	t.Run("ok/receiver-down-requests-still-answered", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		sock := filepath.Join(t.TempDir(), "conjur.sock")
		stop := startPlugin(t, map[string]string{"CONJUR_SWARM_SOCKET": sock, "CONJUR_SWARM_LOG_LEVEL": "error",
			"CONJUR_SWARM_AUDIT_SYSLOG": "tcp://" + addr})
		defer stop()
		for i := range 20 {
			_, stderr, code := execCLI("get", "--socket", sock, "--secret", "db_password", "--secret-label", "conjur.variable=apps/x")
			if code == 0 || !strings.Contains(stderr, "NOT_CONFIGURED") {
				t.Fatalf("request %d: exit %d, %s; want the NOT_CONFIGURED answer", i, code, stderr)
			}
		}
	})
	t.Run("fail/bad-target-named", func(t *testing.T) {
		_, err := load(t, map[string]string{"CONJUR_SWARM_AUDIT_SYSLOG": "syslog.example.com:514"})
		if err == nil || !strings.Contains(err.Error(), "CONJUR_SWARM_AUDIT_SYSLOG") {
			t.Fatalf("error %v, want the setting named", err)
		}
	})
}

// TestSocketIsNeverMoreOpenThan0660: the socket is created under a
// restrictive umask, so even with umask 0 it exists with mode 0660 from its
// first instant (not wider until a chmod), and a directory made for it is
// 0750. listenPrivate is the creation step alone, without the final chmod.
func TestSocketIsNeverMoreOpenThan0660(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	sock := filepath.Join(t.TempDir(), "made", "conjur.sock")
	ln, err := listenPrivate(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o660 {
		t.Errorf("socket created with mode %#o under umask 0; want 0660", perm)
	}
	di, err := os.Stat(filepath.Dir(sock))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o750 {
		t.Errorf("socket directory created with mode %#o under umask 0; want 0750", perm)
	}
	if got := syscall.Umask(0); got != 0 {
		t.Errorf("listenPrivate left the umask at %#o", got)
	}
}
