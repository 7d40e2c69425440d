package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process the harness started: the Conjur-compatible server, the
// plugin, or the naive driver. Its output goes to work/<name>.log.
type child struct {
	name   string
	cmd    *exec.Cmd
	log    *os.File
	exited chan error

	profile string // the plugin's profile directory (-profile), else ""
	windows int    // profiling windows opened so far
}

// startChild runs bin with args and exactly env (nil: only PATH and HOME).
func startChild(bin, work, name string, args, env []string) (*child, error) {
	logFile, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The child ends with the harness even if the harness is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting the %s process: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logFile, exited: make(chan error, 1)}
	go func() { c.exited <- cmd.Wait() }()
	return c, nil
}

// waitReady polls ready until it succeeds, the process exits, or 15 s pass;
// on failure the process is stopped.
func (c *child) waitReady(ctx context.Context, ready func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case exitErr := <-c.exited:
			c.exited <- exitErr
			c.stop()
			return fmt.Errorf("the %s process exited at start (%v); its log:\n%s", c.name, exitErr, readFile(c.log.Name()))
		case <-ctx.Done():
			c.stop()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return fmt.Errorf("the %s process was not ready within 15s (%v); its log:\n%s", c.name, err, readFile(c.log.Name()))
		}
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// profileWindow opens a profiling window of a plugin started with -profile
// (a binary built with -tags profile: cmd/conjur-swarm/profile.go) for the
// run named name, and returns the func that closes it; without -profile it
// does nothing. The window's number and name go to windows.txt in the
// plugin's profile directory.
func (c *child) profileWindow(name string) (func(), error) {
	if c.profile == "" {
		return func() {}, nil
	}
	c.windows++
	f, err := os.OpenFile(filepath.Join(c.profile, "windows.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(f, "%d %s\n", c.windows, name)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return nil, err
	}
	time.Sleep(100 * time.Millisecond) // the window's first profiles are written before the run is measured
	return func() { _ = c.cmd.Process.Signal(syscall.SIGUSR1) }, nil
}

// stop sends SIGTERM and waits for the process (SIGKILL after 10 s).
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		c.exited <- err
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
	}
	_ = c.log.Close()
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// peakRSSKiB is VmHWM (the peak resident set size) of process pid.
func peakRSSKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmHWM line in /proc/" + strconv.Itoa(pid) + "/status")
}

// processCPU is the user+system CPU time process pid has used.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// contextSwitches is the voluntary plus involuntary context switches of
// every thread of process pid so far.
func contextSwitches(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n, nil
}
