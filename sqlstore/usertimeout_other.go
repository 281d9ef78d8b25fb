//go:build !linux

package sqlstore

import (
	"syscall"
	"time"
)

// userTimeout does nothing where TCP_USER_TIMEOUT is not available:
// keepalives and query contexts still bound a dead connection.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
