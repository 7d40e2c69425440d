// Command reader is the e2e suite's application: it prints each secret named
// on its command line, read from /run/secrets/<name>, as one framed line
//
//	CSE2E-SECRET <name> <hex of the exact bytes>
//
// (or "CSE2E-MISSING <name> <error>"), then "CSE2E-READY", and sleeps until
// it is stopped, so that the task stays running while the test reads its log.
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	for _, name := range os.Args[1:] {
		data, err := os.ReadFile(filepath.Join("/run/secrets", name))
		if err != nil {
			fmt.Printf("CSE2E-MISSING %s %v\n", name, err)
			continue
		}
		fmt.Printf("CSE2E-SECRET %s %s\n", name, hex.EncodeToString(data))
	}
	fmt.Println("CSE2E-READY")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
