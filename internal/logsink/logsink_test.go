package logsink

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.uber.org/zap/zapcore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is an underlying writer that keeps each call's bytes. A call
// can be held (gate) until the test releases it, fail (failCall), or take
// at most maxChunk bytes.
type recorder struct {
	mu       sync.Mutex
	calls    [][]byte
	syncs    int
	syncErr  error
	failCall int           // 1-based call that fails with errFail; 0: none
	maxChunk int           // bytes taken per call; 0: all
	entered  chan struct{} // a call has begun (if not nil)
	gate     chan struct{} // each call waits for a value (if not nil)
}

var errFail = errors.New("disk on fire")

func (r *recorder) Write(p []byte) (int, error) {
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxChunk > 0 && len(p) > r.maxChunk {
		p = p[:r.maxChunk]
	}
	r.calls = append(r.calls, bytes.Clone(p))
	if len(r.calls) == r.failCall {
		return 0, errFail
	}
	return len(p), nil
}

func (r *recorder) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs++
	return r.syncErr
}

func (r *recorder) written() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(bytes.Join(r.calls, nil))
}

func (r *recorder) callStrings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		out = append(out, string(c))
	}
	return out
}

// waitGathered returns once the pending group holds n bytes: the Writes
// started by the test have joined it and are waiting.
func waitGathered(w *Writer, n int) {
	for {
		w.mu.Lock()
		got := 0
		if w.pending != nil {
			got = len(w.pending.buf)
		}
		w.mu.Unlock()
		if got == n {
			return
		}
		runtime.Gosched()
	}
}

// holdFirst starts a Write of "first\n" on a Writer with the given limit
// around a gated recorder (whose call failCall fails), and returns once that
// write is in the recorder, held until the test sends on rec.gate; first
// receives its error.
func holdFirst(limit, failCall int) (*recorder, *Writer, <-chan error) {
	rec := &recorder{entered: make(chan struct{}), gate: make(chan struct{}), failCall: failCall}
	w := New(rec, limit)
	first := make(chan error, 1)
	go func() { _, err := w.Write([]byte("first\n")); first <- err }()
	<-rec.entered
	return rec, w, first
}

type writeResult struct {
	line string
	n    int
	err  error
}

// startWrites writes each line from a goroutine of its own, one after the
// other has joined the pending group (so their order is known), and
// returns the channel their results arrive on.
func startWrites(w *Writer, lines []string, gathered int) <-chan writeResult {
	results := make(chan writeResult, len(lines))
	for _, line := range lines {
		go func() {
			n, err := w.Write([]byte(line))
			results <- writeResult{line, n, err}
		}()
		gathered += len(line)
		waitGathered(w, gathered)
	}
	return results
}

func TestWrite(t *testing.T) {
	t.Run("ok/uncontended writes are one call each, unchanged", func(t *testing.T) {
		rec := &recorder{}
		w := New(rec, 0)
		for _, line := range []string{"a\n", "bb\n", "ccc\n"} {
			n, err := w.Write([]byte(line))
			if n != len(line) || err != nil {
				t.Fatalf("Write(%q) = %d, %v; want %d, nil", line, n, err, len(line))
			}
		}
		if diff := cmp.Diff([]string{"a\n", "bb\n", "ccc\n"}, rec.callStrings()); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})

	t.Run("ok/writes that arrive during a write go out together, after it, and return only then", func(t *testing.T) {
		rec, w, first := holdFirst(0, 0)

		lines := []string{"second\n", "third\n", "fourth\n"}
		results := startWrites(w, lines, 0)
		if len(results) != 0 {
			t.Fatalf("a Write returned before its bytes were written: %+v", <-results)
		}
		rec.gate <- struct{}{} // let "first" through
		if err := <-first; err != nil {
			t.Fatalf("first Write: %v", err)
		}
		<-rec.entered // the group's write has begun
		if len(results) != 0 {
			t.Fatalf("a Write returned before its group was written: %+v", <-results)
		}
		rec.gate <- struct{}{}
		for range lines {
			r := <-results
			if r.n != len(r.line) || r.err != nil {
				t.Errorf("Write(%q) = %d, %v; want %d, nil", r.line, r.n, r.err, len(r.line))
			}
			if !strings.Contains(rec.written(), r.line) {
				t.Errorf("Write(%q) returned but the writer never got it", r.line)
			}
		}
		want := []string{"first\n", "second\nthird\nfourth\n"}
		if diff := cmp.Diff(want, rec.callStrings()); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})

	t.Run("fail/a failed write reaches every Write it carried, and only those", func(t *testing.T) {
		rec, w, first := holdFirst(0, 2)
		lines := []string{"second\n", "third\n", "fourth\n"}
		results := startWrites(w, lines, 0)
		rec.gate <- struct{}{}
		if err := <-first; err != nil {
			t.Errorf("first Write (before the failure): %v", err)
		}
		<-rec.entered
		rec.gate <- struct{}{} // the group's write, which fails
		for range lines {
			r := <-results
			if r.n != 0 || !errors.Is(r.err, errFail) {
				t.Errorf("Write(%q) = %d, %v; want 0, %v", r.line, r.n, r.err, errFail)
			}
		}
		go func() { <-rec.entered; rec.gate <- struct{}{} }()
		if _, err := w.Write([]byte("after\n")); err != nil {
			t.Errorf("Write after the failure: %v", err)
		}
	})

	t.Run("ok/a group stays within the limit; a longer line goes whole, alone", func(t *testing.T) {
		rec, w, first := holdFirst(16, 0)
		long := strings.Repeat("x", 40) + "\n"
		// "aaaaaaa\n" and "bbbbbbb\n" fill the group (16 bytes); "ccc\n"
		// waits for room, so it cannot be gathered yet: start it last.
		results := startWrites(w, []string{"aaaaaaa\n", "bbbbbbb\n"}, 0)
		more := make(chan writeResult, 2)
		for _, line := range []string{"ccc\n", long} {
			go func() {
				n, err := w.Write([]byte(line))
				more <- writeResult{line, n, err}
			}()
		}
		rec.gate <- struct{}{} // first
		for range 3 {          // the full group, then "ccc\n" and the long line in some order
			<-rec.entered
			rec.gate <- struct{}{}
		}
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if r := <-results; r.err != nil {
				t.Fatal(r.err)
			}
			if r := <-more; r.err != nil {
				t.Fatal(r.err)
			}
		}
		calls := rec.callStrings()
		if diff := cmp.Diff([]string{"first\n", "aaaaaaa\nbbbbbbb\n"}, calls[:2]); diff != "" {
			t.Errorf("first calls (-want +got):\n%s", diff)
		}
		rest := calls[2:]
		if !cmp.Equal(rest, []string{"ccc\n", long}) && !cmp.Equal(rest, []string{long, "ccc\n"}) {
			t.Errorf("last calls = %q; want %q and the long line each alone", rest, "ccc\n")
		}
	})

	t.Run("ok/short writes are continued", func(t *testing.T) {
		rec := &recorder{maxChunk: 3}
		w := New(rec, 0)
		line := "a line longer than three bytes\n"
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(line))
		}
		if got := rec.written(); got != line {
			t.Errorf("written %q; want %q", got, line)
		}
	})

	t.Run("fail/a writer that makes no progress is a short write", func(t *testing.T) {
		w := New(stuck{}, 0)
		if n, err := w.Write([]byte("x\n")); n != 0 || !errors.Is(err, io.ErrShortWrite) {
			t.Errorf("Write = %d, %v; want 0, %v", n, err, io.ErrShortWrite)
		}
	})
}

// stuck accepts nothing and reports no error.
type stuck struct{}

func (stuck) Write([]byte) (int, error) { return 0, nil }
func (stuck) Sync() error               { return nil }

func TestSync(t *testing.T) {
	t.Run("ok/waits for the pending group, then syncs the writer", func(t *testing.T) {
		rec, w, first := holdFirst(0, 0)
		results := startWrites(w, []string{"second\n"}, 0)
		synced := make(chan error, 1)
		go func() { synced <- w.Sync() }()
		rec.gate <- struct{}{}
		<-rec.entered
		if len(synced) != 0 {
			t.Fatal("Sync returned before the pending group was written")
		}
		rec.gate <- struct{}{}
		if err := <-synced; err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if got := rec.written(); got != "first\nsecond\n" {
			t.Errorf("written at Sync's return: %q", got)
		}
		if rec.syncs != 1 {
			t.Errorf("underlying Sync calls = %d; want 1", rec.syncs)
		}
		<-first
		<-results
	})

	t.Run("fail/the writer's Sync error is returned", func(t *testing.T) {
		rec := &recorder{syncErr: errFail}
		if err := New(rec, 0).Sync(); !errors.Is(err, errFail) {
			t.Errorf("Sync = %v; want %v", err, errFail)
		}
	})
}

// countingFile counts the writes to f.
type countingFile struct {
	*os.File
	mu     sync.Mutex
	writes int
	bad    []string // writes that did not end a line
}

func (c *countingFile) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	if len(p) == 0 || p[len(p)-1] != '\n' {
		c.bad = append(c.bad, string(p))
	}
	c.mu.Unlock()
	return c.File.Write(p)
}

// TestConcurrentLinesIntoAPipe has many goroutines write lines of varied
// length, some longer than the limit, into a pipe: every line arrives
// whole, exactly once, each writer's lines in its own order, and every
// write(2) ends a line.
func TestConcurrentLinesIntoAPipe(t *testing.T) {
	const writers, perWriter, limit = 16, 300, 512
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &countingFile{File: pw}
	w := New(out, limit)

	type got struct {
		lines []string
		err   error
	}
	read := make(chan got, 1)
	go func() {
		var g got
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			g.lines = append(g.lines, sc.Text())
		}
		g.err = sc.Err()
		read <- g
	}()

	var wg sync.WaitGroup
	for id := range writers {
		wg.Go(func() {
			for seq := range perWriter {
				pad := strings.Repeat("p", (id*31+seq*17)%100)
				if seq%97 == 0 {
					pad = strings.Repeat("L", 3*limit) // longer than a group
				}
				line := fmt.Sprintf("w%d %d %s\n", id, seq, pad)
				if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
					t.Errorf("Write = %d, %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	g := <-read
	_ = r.Close()
	if g.err != nil {
		t.Fatal(g.err)
	}

	next := make([]int, writers)
	for _, line := range g.lines {
		var id, seq int
		var pad string
		if _, err := fmt.Sscanf(line, "w%d %d %s", &id, &seq, &pad); err != nil && !strings.HasSuffix(line, " ") {
			t.Fatalf("line %q is not whole: %v", line, err)
		}
		if id < 0 || id >= writers || seq != next[id] {
			t.Fatalf("line %q: want writer %d's line %d next", line, id, next[id])
		}
		if want := fmt.Sprintf("w%d %d ", id, seq); !strings.HasPrefix(line, want) || strings.TrimLeft(strings.TrimPrefix(line, want), "pL") != "" {
			t.Fatalf("line %q is not whole", line)
		}
		next[id]++
	}
	for id, n := range next {
		if n != perWriter {
			t.Errorf("writer %d: %d lines arrived; want %d", id, n, perWriter)
		}
	}
	if len(out.bad) > 0 {
		t.Errorf("%d writes did not end a line, e.g. %q", len(out.bad), out.bad[0])
	}
	t.Logf("%d lines in %d writes", writers*perWriter, out.writes)
}

func BenchmarkWrite(b *testing.B) {
	line := []byte(`{"level":"info","ts":"2026-11-30T12:00:00.123Z","logger":"driver","caller":"driver/driver.go:123","msg":"secret served","secret":"shop_db_password","service":"shop_web","task":"k2x9","node":"n7","rule":"shop","variable":"prod/shop/db/password","decision":"allow","duration":0.000812}` + "\n")
	for _, dest := range []string{"devnull", "pipe", "slow-pipe"} {
		for _, kind := range []string{"locked", "group"} {
			b.Run(dest+"/"+kind, func(b *testing.B) {
				f, done := benchDest(b, dest)
				defer done()
				out := &countingFile{File: f}
				var w io.Writer = New(out, 0)
				if kind == "locked" {
					w = zapcore.Lock(out) // the plugin's writer before logsink
				}
				b.SetParallelism(8) // 8 writers per core, like handlers under a storm
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := w.Write(line); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(out.writes)/float64(b.N), "syscalls/line")
			})
		}
	}
}

// benchDest opens /dev/null, or a pipe drained by a goroutine (slow-pipe:
// one that reads 4 KiB at most every 50 µs, as a busy log collector, so
// that the pipe fills and writes block); done closes it and waits for the
// drain.
func benchDest(b *testing.B, dest string) (*os.File, func()) {
	if dest == "devnull" {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		return f, func() { _ = f.Close() }
	}
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		if dest != "slow-pipe" {
			_, _ = io.Copy(io.Discard, r)
			return
		}
		buf := make([]byte, 4096)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	return w, func() { _ = w.Close(); <-drained; _ = r.Close() }
}
