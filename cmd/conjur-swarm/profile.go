//go:build profile

package main

// Profiles for the benchmark harness, in a binary built with -tags profile
// only (bench/storm -profile builds one; the plugin as shipped has none of
// this). With STORM_PROFILE_DIR set, each SIGUSR1 starts or stops a window:
// its CPU profile (cpu-N.pprof), the allocation profiles at its start and
// end (allocs-N-start.pprof, allocs-N.pprof: `go tool pprof -base` gives the
// window's), the heap and goroutine profiles at the highest memory use the
// window reached (heap-peak-N.pprof, goroutine-peak-N.pprof), and that peak's runtime/metrics figures
// (peak-N.txt). The variable is read here, not with the settings: it is no
// setting of the plugin.

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
	"time"
)

func init() {
	dir := os.Getenv("STORM_PROFILE_DIR")
	if dir == "" {
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for n := 1; ; n++ {
			<-sig
			w, err := startWindow(dir, n)
			if err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
				continue
			}
			<-sig
			if err := w.stop(); err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
			}
		}
	}()
}

// window is one profiling window of the plugin process.
type window struct {
	dir  string
	n    int
	cpu  *os.File
	done chan struct{}
	peak chan string // the peak's figures, when the sampler stops
}

func startWindow(dir string, n int) (*window, error) {
	w := &window{dir: dir, n: n, done: make(chan struct{}), peak: make(chan string, 1)}
	if err := w.write("allocs", fmt.Sprintf("allocs-%d-start.pprof", n)); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", n)))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	w.cpu = f
	go w.sample()
	return w, nil
}

func (w *window) write(profile, name string) error {
	f, err := os.Create(filepath.Join(w.dir, name))
	if err != nil {
		return err
	}
	err = pprof.Lookup(profile).WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// peakMetrics are the figures sample records at the window's highest
// memory use: what the Go runtime mapped (the first) less what it released
// to the OS (the fifth).
var peakMetrics = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/metadata/other:bytes",
	"/sched/goroutines:goroutines",
	"/gc/heap/goal:bytes",
}

// sample reads the runtime's memory every 5 ms until the window stops, and
// writes the heap and goroutine profiles each time the total grows by a tenth over the last
// one written.
func (w *window) sample() {
	ss := make([]metrics.Sample, len(peakMetrics))
	for i, name := range peakMetrics {
		ss[i].Name = name
	}
	var peak uint64
	written, text := uint64(0), ""
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.done:
			w.peak <- text
			return
		case <-tick.C:
		}
		metrics.Read(ss)
		total := ss[0].Value.Uint64() - ss[4].Value.Uint64() // what is not released to the OS
		if total <= peak {
			continue
		}
		peak, text = total, ""
		for _, s := range ss {
			text += fmt.Sprintf("%s %d\n", s.Name, s.Value.Uint64())
		}
		if total > written+written/10 {
			written = total
			_ = w.write("heap", fmt.Sprintf("heap-peak-%d.pprof", w.n))
			_ = w.write("goroutine", fmt.Sprintf("goroutine-peak-%d.pprof", w.n))
		}
	}
}

func (w *window) stop() error {
	pprof.StopCPUProfile()
	err := w.cpu.Close()
	close(w.done)
	peak := <-w.peak
	if werr := os.WriteFile(filepath.Join(w.dir, fmt.Sprintf("peak-%d.txt", w.n)), []byte(peak), 0o644); err == nil {
		err = werr
	}
	if werr := w.write("allocs", fmt.Sprintf("allocs-%d.pprof", w.n)); err == nil {
		err = werr
	}
	return err
}
