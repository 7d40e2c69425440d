package auditsink

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cyberark/conjur-swarm/internal/audit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 123456000, time.UTC)

func record(decision, secret string) audit.Record {
	return audit.Record{
		Time: t0, Secret: secret, Service: "shop_app", Task: "t1", Node: "n1", Rule: "by-label",
		Variable: "apps/shop/db-password", Decision: decision, Duration: 3 * time.Millisecond,
	}
}

// header is an RFC 5424 header with no structured data.
var header = regexp.MustCompile(`^<(\d+)>1 (\S+) (\S+) (\S+) (\d+) (\S+) - (.*)$`)

// checkMessage parses one received message and compares it with rec.
func checkMessage(t *testing.T, msg string, rec audit.Record, wantPRI int, wantMsgID string) {
	t.Helper()
	m := header.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("not an RFC 5424 message without structured data: %q", msg)
	}
	if pri, _ := strconv.Atoi(m[1]); pri != wantPRI {
		t.Errorf("PRI %d, want %d", pri, wantPRI)
	}
	if ts, err := time.Parse(time.RFC3339Nano, m[2]); err != nil || !ts.Equal(rec.Time) {
		t.Errorf("timestamp %q (%v), want %s", m[2], err, rec.Time)
	}
	if m[3] != "manager-1" || m[4] != "conjur-swarm" || m[6] != wantMsgID {
		t.Errorf("hostname %q app %q msgid %q; want manager-1 conjur-swarm %s", m[3], m[4], m[6], wantMsgID)
	}
	var got audit.Record
	if err := json.Unmarshal([]byte(m[7]), &got); err != nil {
		t.Fatalf("MSG is not the JSON record: %v: %q", err, m[7])
	}
	if diff := cmp.Diff(rec, got); diff != "" {
		t.Errorf("record (-sent +received):\n%s", diff)
	}
}

func newSink(t *testing.T, target Target, opts ...func(*Options)) (*Syslog, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	o := Options{Target: target, Hostname: "manager-1", Logger: zap.New(core),
		DialTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, RetryInterval: 10 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, logs
}

var decisions = []struct {
	decision, msgID string
	pri             int
}{
	{audit.DecisionAllow, "allow", 86},
	{audit.DecisionDeny, "deny", 84},
	{audit.DecisionError, "error", 83},
}

func TestSyslog_datagrams(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	sock := filepath.Join(t.TempDir(), "log")
	ux, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ux.Close()
	for _, tc := range []struct {
		name   string
		target string
		conn   net.PacketConn
	}{
		{"ok/udp", "udp://" + udp.LocalAddr().String(), udp},
		{"ok/unix", "unix://" + sock, ux},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, err := ParseTarget(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := newSink(t, target)
			buf := make([]byte, 64<<10)
			for _, d := range decisions {
				rec := record(d.decision, "db_password")
				s.Audit(rec)
				_ = tc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, _, err := tc.conn.ReadFrom(buf)
				if err != nil {
					t.Fatalf("no datagram: %v", err)
				}
				checkMessage(t, string(buf[:n]), rec, d.pri, d.msgID)
			}
		})
	}
}

// readFrame reads one octet-counted frame (RFC 6587).
func readFrame(r *bufio.Reader) (string, error) {
	n, err := r.ReadString(' ')
	if err != nil {
		return "", err
	}
	size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
	if err != nil {
		return "", err
	}
	b := make([]byte, size)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// streamReceiver accepts one connection on ln and passes its frames on.
func streamReceiver(t *testing.T, ln net.Listener) <-chan string {
	t.Helper()
	out := make(chan string, 16)
	go func() {
		defer close(out)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			f, err := readFrame(r)
			if err != nil {
				return
			}
			out <- f
		}
	}()
	return out
}

func receive(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("the receiver's connection ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}
	return ""
}

func TestSyslog_streams(t *testing.T) {
	t.Run("ok/tcp-octet-counting", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := streamReceiver(t, ln)
		s, _ := newSink(t, Target{Network: "tcp", Address: ln.Addr().String()})
		for _, d := range decisions {
			rec := record(d.decision, "a secret name with spaces")
			s.Audit(rec)
			checkMessage(t, receive(t, got), rec, d.pri, d.msgID)
		}
	})
	t.Run("ok/tls-verified", func(t *testing.T) {
		ln, pool := tlsListener(t)
		got := streamReceiver(t, ln)
		s, _ := newSink(t, Target{Network: "tls", Address: ln.Addr().String()}, func(o *Options) {
			o.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		})
		rec := record(audit.DecisionAllow, "db_password")
		s.Audit(rec)
		checkMessage(t, receive(t, got), rec, 86, "allow")
	})
	t.Run("fail/tls-unknown-ca-is-dropped", func(t *testing.T) {
		ln, _ := tlsListener(t)
		accepted := make(chan struct{})
		go func() {
			defer close(accepted)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}
		}()
		s, logs := newSink(t, Target{Network: "tls", Address: ln.Addr().String()}, func(o *Options) {
			o.TLS = &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
		})
		s.Audit(record(audit.DecisionAllow, "db_password"))
		waitDropped(t, s, 1)
		if sent, _ := s.Stats(); sent != 0 {
			t.Errorf("sent %d records to an unverified receiver", sent)
		}
		if logs.FilterMessageSnippet("audit records dropped").Len() == 0 {
			t.Error("no warning about the dropped record")
		}
		_ = ln.Close()
		<-accepted
	})
}

// waitDropped waits until the sink has dropped at least n records.
func waitDropped(t *testing.T, s *Syslog, n uint64) {
	t.Helper()
	for {
		if _, d := s.Stats(); d >= n {
			return
		}
		select {
		case <-s.changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("dropped %d, want at least %d", s.dropped.Load(), n)
		}
	}
}

// TestSyslog_receiverDown: with nobody listening, Audit keeps returning at
// once: records are dropped and counted, the warning names counts and
// never a record's content; when a receiver appears, records flow again.
func TestSyslog_receiverDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // down: connections are refused
	s, logs := newSink(t, Target{Network: "tcp", Address: addr}, func(o *Options) { o.QueueSize = 4 })
	for range 1000 {
		s.Audit(record(audit.DecisionAllow, "very-secret-name-7"))
	}
	waitDropped(t, s, 996) // at most the queue's 4 can still be waiting
	if sent, _ := s.Stats(); sent != 0 {
		t.Fatalf("sent %d with no receiver", sent)
	}
	warnings := logs.FilterMessageSnippet("audit records dropped").All()
	if len(warnings) == 0 || len(warnings) > 2 {
		t.Fatalf("%d warnings, want one (rate-limited)", len(warnings))
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "very-secret-name-7") || strings.Contains(stringFields(e), "very-secret-name-7") {
			t.Fatalf("the sink's log carries a record's content: %v", e)
		}
	}

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer ln2.Close()
	got := streamReceiver(t, ln2)
	rec := record(audit.DecisionDeny, "after-recovery")
	for {
		// Records queued while it was down may arrive first: wait for ours.
		s.Audit(rec)
		m := receive(t, got)
		if strings.Contains(m, `"secret":"after-recovery"`) {
			checkMessage(t, m, rec, 84, "deny")
			return
		}
	}
}

func stringFields(e observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range e.ContextMap() {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " ")))
		b.WriteString(" ")
	}
	return b.String()
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name, raw string
		want      Target
		wantErr   string
	}{
		{"ok/unix", "unix:///dev/log", Target{"unixgram", "/dev/log"}, ""},
		{"ok/udp", "udp://127.0.0.1:514", Target{"udp", "127.0.0.1:514"}, ""},
		{"ok/tcp-name", "tcp://siem.example.com:601", Target{"tcp", "siem.example.com:601"}, ""},
		{"ok/tls-ipv6", "tls://[::1]:6514", Target{"tls", "[::1]:6514"}, ""},
		{"fail/no-scheme", "127.0.0.1:514", Target{}, "want"},
		{"fail/unix-relative", "unix://dev/log", Target{}, "three slashes"},
		{"fail/no-port", "udp://127.0.0.1", Target{}, "udp://127.0.0.1:514"},
		{"fail/bad-port", "tcp://host:99999", Target{}, "1 to 65535"},
		{"fail/user", "tcp://u:p@host:514", Target{}, "no user"},
		{"fail/scheme", "http://host:514", Target{}, `scheme "http"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTarget(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseTarget = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestNew_checksOptions(t *testing.T) {
	_, err := New(Options{Target: Target{Network: "http"}, QueueSize: -1})
	for _, want := range []string{"Logger is nil", `network "http"`, "QueueSize is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

// tlsListener is a TLS listener on 127.0.0.1 with a self-signed
// certificate, and the pool that trusts it; closed when the test ends.
func tlsListener(t *testing.T) (net.Listener, *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln, pool
}

// testCert is a self-signed certificate for 127.0.0.1 and the pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslog receiver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
