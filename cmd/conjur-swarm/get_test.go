package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// servePluginValue answers every request on a unix socket with value, the
// way a plugin answers GetSecret.
func servePluginValue(t *testing.T, value []byte) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "conjur.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/SecretProvider.GetSecret" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"Value":%q}`, base64.StdEncoding.EncodeToString(value))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

// openPTY opens a pseudo-terminal pair: the terminal side is what a shell
// would hand `get` as stdout.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminal on this machine (CI=true: /dev/ptmx is needed): %v", err)
		}
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, s
}

// readPTY returns what was written to tty, read from its master after tty
// is closed (Linux answers EIO once the terminal side is gone).
func readPTY(t *testing.T, master, tty *os.File) string {
	t.Helper()
	tty.Close()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, unix.EIO) {
				t.Fatal(err)
			}
			return out.String()
		}
	}
}

// TestGetNewlineOnlyOnATerminal: get prints a value's exact bytes to a file
// or a pipe, and ends the line on a terminal.
func TestGetNewlineOnlyOnATerminal(t *testing.T) {
	tests := []struct {
		name     string
		value    string
		terminal bool
		want     string
	}{
		{name: "ok/file keeps the exact bytes", value: "s3cr3t", want: "s3cr3t"},
		{name: "ok/file keeps a trailing newline", value: "line\n", want: "line\n"},
		// The terminal's line discipline writes \n as \r\n.
		{name: "ok/terminal ends the line", value: "s3cr3t", terminal: true, want: "s3cr3t\r\n"},
		{name: "ok/terminal adds no second newline", value: "line\n", terminal: true, want: "line\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := servePluginValue(t, []byte(tt.value))
			root := newRootCmd()
			var stderr bytes.Buffer
			root.SetErr(&stderr)
			root.SetArgs([]string{"get", "--socket", sock, "--secret", "db"})
			var got string
			if tt.terminal {
				master, tty := openPTY(t)
				root.SetOut(tty)
				if err := root.Execute(); err != nil {
					t.Fatalf("get: %v %s", err, stderr.String())
				}
				got = readPTY(t, master, tty)
			} else {
				f, err := os.Create(filepath.Join(t.TempDir(), "out"))
				if err != nil {
					t.Fatal(err)
				}
				root.SetOut(f)
				err = root.Execute()
				f.Close()
				if err != nil {
					t.Fatalf("get: %v %s", err, stderr.String())
				}
				b, err := os.ReadFile(f.Name())
				if err != nil {
					t.Fatal(err)
				}
				got = string(b)
			}
			if got != tt.want {
				t.Errorf("get wrote %q, want %q", got, tt.want)
			}
		})
	}
	if isTerminal(&strings.Builder{}) {
		t.Error("a strings.Builder counts as a terminal")
	}
}
