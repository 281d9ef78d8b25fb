package sqlstore

import (
	"syscall"
	"time"
)

// tcpUserTimeout is Linux's TCP_USER_TIMEOUT socket option (linux/tcp.h),
// which package syscall does not name.
const tcpUserTimeout = 0x12

// userTimeout sets TCP_USER_TIMEOUT: a connection whose sent data stays
// unacknowledged that long is dropped, instead of retransmitting for
// minutes while a partition swallows it.
func userTimeout(d time.Duration) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d/time.Millisecond))
		})
		if err != nil {
			return err
		}
		return serr
	}
}
