// Command dropper calls privs.Drop and prints its own /proc/self/status,
// then reads the file named by its argument (root-owned, 0600), for
// internal/privs's tests. Build it with CGO_ENABLED=0.
package main

import (
	"fmt"
	"os"

	"github.com/cyberark/conjur-swarm/internal/privs"
)

func main() {
	if err := privs.Drop(); err != nil {
		fmt.Println("DROP-ERROR", err)
		os.Exit(2)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Println("STATUS-ERROR", err)
		os.Exit(2)
	}
	os.Stdout.Write(status)
	if _, err := os.ReadFile(os.Args[1]); err != nil {
		fmt.Println("READ-ERROR", err)
		os.Exit(3)
	}
	fmt.Println("READ-OK")
	// A capability the process had as root: changing a file's owner.
	if err := os.Chown(os.Args[1], 1, 1); err == nil {
		fmt.Println("CHOWN-OK")
	} else {
		fmt.Println("CHOWN-REFUSED", err)
	}
}
