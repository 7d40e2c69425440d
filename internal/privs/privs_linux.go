package privs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The capset arguments live in package variables so that they never move
// while the kernel reads them (Drop runs once, before any request).
var (
	capHeader = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	capData   [2]unix.CapUserData // all zero: no capability in any set
)

// Drop removes every capability from the bounding, ambient, inheritable,
// permitted and effective sets of every thread of the process, and sets
// no_new_privs. It returns why when it could not (e.g. a binary built with
// cgo, where Go cannot act on every thread, or a process not allowed to
// change its bounding set); the caller logs it and goes on.
func Drop() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	// The bounding set first: shrinking it needs CAP_SETPCAP, which the
	// capset below removes.
	for c := 0; c <= last; c++ {
		if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, explain(e))
		}
	}
	if _, _, e := syscall.AllThreadsSyscall6(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != syscall.EINVAL {
		return fmt.Errorf("clearing the ambient capabilities: %w", explain(e))
	}
	if _, _, e := syscall.AllThreadsSyscall6(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("setting no_new_privs: %w", explain(e))
	}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&capHeader)), uintptr(unsafe.Pointer(&capData[0])), 0); e != 0 {
		return fmt.Errorf("clearing the effective, permitted and inheritable capabilities: %w", explain(e))
	}
	return nil
}

func explain(e syscall.Errno) error {
	if e == syscall.ENOTSUP {
		return errors.New("not supported in a binary built with cgo (build with CGO_ENABLED=0, as make build does)")
	}
	return e
}

// lastCap is the highest capability number the kernel knows.
func lastCap() (int, error) {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("reading the highest capability number: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("/proc/sys/kernel/cap_last_cap holds %q, not a capability number", strings.TrimSpace(string(data)))
	}
	return n, nil
}
