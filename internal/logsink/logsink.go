// Package logsink is the plugin's log output: a write syncer that commits
// concurrent log lines in groups, so that a burst of lines costs one write
// system call instead of one per line, without giving up what a line-at-a-
// time writer promises.
//
// The promise kept: Write returns only once its bytes have been handed to
// the underlying writer (for a file or pipe: the write(2) that carries them
// has returned), so an audit line is in the kernel before the GetSecret it
// records is answered, and a crash never loses the line of a secret
// already served. Lines keep the order in which their Writes began.
//
// How: the first Write that finds nobody writing becomes the leader and
// writes its own bytes at once (an uncontended Write is one system call, as
// with a plain locked writer). Writes that arrive while a leader is writing
// append their bytes to a pending group and wait; when the leader returns,
// one of them becomes the next leader and writes the whole group in one
// call, and everyone whose bytes it carried returns with its result. There
// is no background goroutine and no timer: nothing waits unless a write is
// already under way.
package logsink

import (
	"io"
	"sync"
)

// PipeAtomic is the default group limit: POSIX's PIPE_BUF on Linux. A
// write of at most this many bytes to a pipe is never interleaved with
// another writer's, so a group of lines reaches a pipe shared with another
// stream (stdout and stderr of one terminal or fifo) as whole lines, as
// the lines did one by one.
const PipeAtomic = 4096

// Syncer is what the sink writes to: an *os.File such as os.Stdout.
type Syncer interface {
	Write(p []byte) (int, error)
	Sync() error
}

// Writer is a group-commit write syncer around one Syncer. It is safe for
// concurrent use and needs no zapcore.Lock.
type Writer struct {
	out   Syncer
	limit int

	mu      sync.Mutex
	changed sync.Cond // broadcast when a write ends (a group done, room made)
	writing bool      // a leader is in a write to out
	ended   uint64    // writes to out that have returned
	pending *group    // bytes gathered for the next write, or nil
	spare   []byte    // a finished group's buffer, kept for the next one
}

// group is the bytes of one or more Writes, written in one call to out.
type group struct {
	buf  []byte
	done bool
	err  error
}

// New returns a Writer around out whose groups hold at most limit bytes
// (PipeAtomic if limit <= 0). A single Write longer than limit is written
// whole, in a group of its own: a line is never split between two groups.
func New(out Syncer, limit int) *Writer {
	if limit <= 0 {
		limit = PipeAtomic
	}
	w := &Writer{out: out, limit: limit}
	w.changed.L = &w.mu
	return w
}

// Write writes p, alone or in a group with other Writes' bytes, and returns
// once the write that carried p has returned: len(p) and nil if all of it
// was written, else that write's error (every Write the failed write
// carried gets the error). p is not kept after Write returns.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.writing || w.pending != nil {
		return w.join(p)
	}
	// Nobody writing, nothing gathered: write p directly, no copy. (This
	// path's frame is kept small, the group's work in join: it is under
	// the audit line, whose stack depth sets every GetSecret goroutine's
	// stack size; see docs/architecture.md.)
	w.writing = true
	w.mu.Unlock()
	n, err := w.out.Write(p)
	if err == nil && n != len(p) {
		err = writeRest(w.out, p, n)
	}
	w.mu.Lock()
	w.endLocked()
	w.mu.Unlock()
	return result(len(p), err)
}

// join adds p to the pending group, with w.mu held on entry, and returns
// once the group has been written, leading its write if nobody else does.
//
//go:noinline
func (w *Writer) join(p []byte) (int, error) {
	var mine *group
	for {
		switch {
		case mine != nil && mine.done:
			err := mine.err
			w.mu.Unlock()
			return result(len(p), err)
		case mine == nil && w.fits(len(p)):
			if w.pending == nil {
				w.pending = &group{buf: w.spare[:0]}
				w.spare = nil
			}
			w.pending.buf = append(w.pending.buf, p...)
			mine = w.pending
		case !w.writing && w.pending != nil:
			// Lead: write what is gathered (ours, or the full group
			// that keeps ours out).
			w.flushLocked()
		default:
			w.changed.Wait()
		}
	}
}

// fits reports whether n more bytes may join the pending group: there is
// none yet, or it is empty, or it stays within the limit.
func (w *Writer) fits(n int) bool {
	return w.pending == nil || len(w.pending.buf) == 0 || len(w.pending.buf)+n <= w.limit
}

// flushLocked writes the pending group as the leader, with w.mu held on
// entry and on return (released during the write).
func (w *Writer) flushLocked() {
	g := w.pending
	w.pending = nil
	w.writing = true
	w.mu.Unlock()
	err := writeRest(w.out, g.buf, 0)
	w.mu.Lock()
	g.err, g.done = err, true
	if cap(g.buf) <= 2*w.limit {
		w.spare = g.buf[:0]
	}
	g.buf = nil
	w.endLocked()
}

// endLocked records that the leader's write returned and wakes the waiters.
func (w *Writer) endLocked() {
	w.writing = false
	w.ended++
	w.changed.Broadcast()
}

// Sync waits until every Write begun before it has been written, then
// syncs the underlying writer (zap calls Sync before a Fatal exit and on a
// panic). The underlying Sync's error is returned as it is: for a pipe
// that is EINVAL, as with the plain writer.
func (w *Writer) Sync() error {
	w.mu.Lock()
	if g := w.pending; g != nil {
		// Written after the write under way, if any: wait for it, leading
		// when nobody else does.
		for !g.done {
			if !w.writing && w.pending == g {
				w.flushLocked()
				continue
			}
			w.changed.Wait()
		}
	} else {
		for ended := w.ended; w.writing && w.ended == ended; {
			w.changed.Wait()
		}
	}
	w.mu.Unlock()
	return w.out.Sync()
}

// writeRest writes p[done:], calling out again after a short write that
// reported no error.
func writeRest(out io.Writer, p []byte, done int) error {
	for p = p[done:]; len(p) > 0; {
		n, err := out.Write(p)
		if err != nil {
			return err
		}
		if n <= 0 || n > len(p) {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}

// result is a Write's return for a p of n bytes whose write ended with err:
// a failed group is reported as failed for each of its Writes, whatever
// share of it reached out.
func result(n int, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	return n, nil
}
