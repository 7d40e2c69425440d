package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// listenSocket listens on the unix socket at path, creating its directory
// and replacing a stale socket file, but refusing one another process still
// answers on.
func listenSocket(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("CONJUR_SWARM_SOCKET %s exists and is not a socket: remove it or choose another path", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("CONJUR_SWARM_SOCKET %s: another process is serving on it; stop it first", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("CONJUR_SWARM_SOCKET %s: removing the stale socket: %w", path, err)
		}
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("CONJUR_SWARM_SOCKET %s: %w", path, err)
	}
	// The mode does not depend on the umask any more; this only restates it
	// for a file system that ignores the umask for sockets.
	if err := os.Chmod(path, 0o660); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("CONJUR_SWARM_SOCKET %s: %w", path, err)
	}
	return ln, nil
}

// listenPrivate creates the socket's directory (0750) if missing and the
// socket under umask 0117, so that the socket is 0660 from its first
// instant rather than the process umask's mode until a chmod. The umask is
// process-wide: serve calls this before it starts anything that creates
// files, and restores the previous umask at once.
func listenPrivate(path string) (net.Listener, error) {
	old := syscall.Umask(0o027)
	err := os.MkdirAll(filepath.Dir(path), 0o750)
	syscall.Umask(0o117)
	var ln net.Listener
	if err == nil {
		ln, err = net.Listen("unix", path)
	}
	syscall.Umask(old)
	return ln, err
}
