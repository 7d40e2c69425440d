//go:build !linux

package privs

import "errors"

// Drop is Linux only.
func Drop() error { return errors.New("dropping capabilities is supported on Linux only") }
