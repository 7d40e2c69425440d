// Package auditsink sends the plugin's audit records to a syslog receiver
// (a SIEM's collector) as RFC 5424 messages whose MSG is the JSON record.
//
// A sink never blocks or fails the GetSecret that produced a record: Audit
// only puts the record on a bounded queue, one goroutine owned by the sink
// writes the queue out, and a record that finds the queue full, or that
// could not be written because the receiver is down, is dropped, counted
// and reported by a rate-limited warning in the plugin's log.
package auditsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cyberark/conjur-swarm/internal/audit"
)

// Target is where the sink sends: a parsed CONJUR_SWARM_AUDIT_SYSLOG.
type Target struct {
	// Network is "unixgram", "udp", "tcp" or "tls".
	Network string
	// Address is a socket path (unixgram) or host:port.
	Address string
}

func (t Target) String() string {
	if t.Network == "unixgram" {
		return "unix://" + t.Address
	}
	return t.Network + "://" + t.Address
}

// ParseTarget reads unix:///dev/log, udp://host:port, tcp://host:port or
// tls://host:port.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return Target{}, fmt.Errorf("%q: want unix:///PATH, udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Target{}, fmt.Errorf("%q: no user, query or fragment: want SCHEME://HOST:PORT or unix:///PATH", raw)
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return Target{}, fmt.Errorf("%q: want unix:///PATH (three slashes, an absolute path such as /dev/log)", raw)
		}
		return Target{Network: "unixgram", Address: u.Path}, nil
	case "udp", "tcp", "tls":
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || (u.Path != "" && u.Path != "/") {
			return Target{}, fmt.Errorf("%q: want %s://HOST:PORT, e.g. %s://127.0.0.1:%s", raw, u.Scheme, u.Scheme, defaultPort(u.Scheme))
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Target{}, fmt.Errorf("%q: port %q: want 1 to 65535", raw, port)
		}
		return Target{Network: u.Scheme, Address: u.Host}, nil
	}
	return Target{}, fmt.Errorf("%q: scheme %q: want unix, udp, tcp or tls", raw, u.Scheme)
}

func defaultPort(scheme string) string {
	if scheme == "tls" {
		return "6514"
	}
	return "514"
}

// Options configure a Syslog sink.
type Options struct {
	Target Target
	// TLS verifies the receiver of a tls:// target (RootCAs, ServerName
	// default to the system pool and the target's host).
	TLS *tls.Config
	// Hostname and AppName fill the RFC 5424 header (defaults: os.Hostname,
	// "conjur-swarm").
	Hostname, AppName string
	// QueueSize bounds the records waiting to be sent (default 1024).
	QueueSize int
	// Logger receives the sink's own warnings (never a record's content
	// beyond counts); required.
	Logger *zap.Logger
	// DialTimeout and WriteTimeout bound one connection attempt and one
	// write (defaults 2 s each). RetryInterval is the pause after a failed
	// connection (default 1 s).
	DialTimeout, WriteTimeout, RetryInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Syslog is a running sink. Audit is safe for concurrent use; Close stops
// the sink's goroutine.
type Syslog struct {
	opts  Options
	queue chan []byte
	log   *zap.Logger

	sent, dropped atomic.Uint64
	// changed is signalled after every change of the counters (tests wait
	// on it instead of polling).
	changed chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	warnMu   sync.Mutex
	lastWarn time.Time
	warned   uint64 // dropped count at the last warning
}

// New checks opts and starts the sink's writer.
func New(opts Options) (*Syslog, error) {
	var errs []error
	if opts.Logger == nil {
		errs = append(errs, errors.New("auditsink: Options.Logger is nil"))
	}
	switch opts.Target.Network {
	case "unixgram", "udp", "tcp", "tls":
	default:
		errs = append(errs, fmt.Errorf("auditsink: target network %q: want unixgram, udp, tcp or tls", opts.Target.Network))
	}
	if opts.QueueSize < 0 {
		errs = append(errs, errors.New("auditsink: Options.QueueSize is negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = 1024
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.AppName == "" {
		opts.AppName = "conjur-swarm"
	}
	for _, d := range []*time.Duration{&opts.DialTimeout, &opts.WriteTimeout} {
		if *d <= 0 {
			*d = 2 * time.Second
		}
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Syslog{
		opts: opts, queue: make(chan []byte, opts.QueueSize),
		log: opts.Logger.With(zap.String("audit_syslog", opts.Target.String())),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}, 1),
	}
	go s.run()
	return s, nil
}

// Audit queues one decision record; it never waits. A full queue drops
// the record (counted, and warned about at most every 10 s).
func (s *Syslog) Audit(rec audit.Record) {
	msg := s.format(rec)
	select {
	case s.queue <- msg:
	default:
		s.drop(1, "the queue is full (the receiver is down or slower than the decisions)")
	}
}

// Stats are the records written and dropped so far.
func (s *Syslog) Stats() (sent, dropped uint64) { return s.sent.Load(), s.dropped.Load() }

// Close stops the writer; records still queued are dropped (and counted).
func (s *Syslog) Close() {
	s.cancel()
	<-s.done
}

// severity and msgID of a decision: Conjur's own audit uses facility
// authpriv (10) with info for successes and warning for failures.
func severity(decision string) (int, string) {
	switch decision {
	case audit.DecisionAllow:
		return 6, "allow"
	case audit.DecisionDeny:
		return 4, "deny"
	}
	return 3, "error"
}

const facilityAuthpriv = 10

// format renders rec as an RFC 5424 message: header, no structured data,
// the JSON record as MSG.
func (s *Syslog) format(rec audit.Record) []byte {
	sev, msgID := severity(rec.Decision)
	body, err := json.Marshal(rec)
	if err != nil { // a Record always encodes; keep the shape if not
		body = []byte(`{"error":"the audit record could not be encoded"}`)
	}
	ts := rec.Time
	if ts.IsZero() {
		ts = s.opts.Now()
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s %s %d %s - ", facilityAuthpriv*8+sev,
		ts.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), headerField(s.opts.Hostname, 255),
		headerField(s.opts.AppName, 48), os.Getpid(), msgID)
	b.Write(body)
	return b.Bytes()
}

// headerField is an RFC 5424 header field: printable US-ASCII without
// spaces, at most max characters, "-" when empty.
func headerField(v string, max int) string {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v) && len(out) < max; i++ {
		if c := v[i]; c > ' ' && c < 0x7f {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

func (s *Syslog) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Syslog) drop(n uint64, why string) {
	// The warning is written before the count moves, and the signal comes
	// last, so whoever sees the new count also finds its warning.
	defer s.signal()
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	total := s.dropped.Load() + n
	defer s.dropped.Add(n)
	now := s.opts.Now()
	if !s.lastWarn.IsZero() && now.Sub(s.lastWarn) < 10*time.Second {
		return
	}
	s.log.Warn("audit records dropped: the syslog receiver is not taking them; the plugin's own log still has every decision",
		zap.String("why", why), zap.Uint64("dropped_since_last_warning", total-s.warned), zap.Uint64("dropped_total", total))
	s.lastWarn, s.warned = now, total
}

// run owns the connection: it writes queued records, reconnecting after a
// failure (records that fail to be written are dropped, not retried, so a
// receiver that half-works cannot stall the queue).
func (s *Syslog) run() {
	defer close(s.done)
	var conn net.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
		if n := len(s.queue); n > 0 {
			s.dropped.Add(uint64(n))
		}
	}()
	for {
		var msg []byte
		select {
		case <-s.ctx.Done():
			return
		case msg = <-s.queue:
		}
		if conn == nil {
			c, err := s.dial()
			if err != nil {
				s.drop(1, "connect: "+err.Error())
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(s.opts.RetryInterval):
				}
				continue
			}
			conn = c
		}
		if err := s.write(conn, msg); err != nil {
			s.drop(1, "write: "+err.Error())
			_ = conn.Close()
			conn = nil
			continue
		}
		s.sent.Add(1)
		s.signal()
	}
}

func (s *Syslog) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.DialTimeout)
	defer cancel()
	t := s.opts.Target
	if t.Network == "tls" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.opts.TLS != nil {
			cfg = s.opts.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(t.Address)
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
		return d.DialContext(ctx, "tcp", t.Address)
	}
	var d net.Dialer
	return d.DialContext(ctx, t.Network, t.Address)
}

// write sends one message: a datagram for unix and udp, octet-counted
// framing (RFC 6587, required by RFC 5425 for TLS) on a stream.
func (s *Syslog) write(conn net.Conn, msg []byte) error {
	if err := conn.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout)); err != nil {
		return err
	}
	switch s.opts.Target.Network {
	case "tcp", "tls":
		framed := make([]byte, 0, len(msg)+8)
		framed = strconv.AppendInt(framed, int64(len(msg)), 10)
		framed = append(framed, ' ')
		framed = append(framed, msg...)
		_, err := conn.Write(framed)
		return err
	}
	_, err := conn.Write(msg)
	return err
}
