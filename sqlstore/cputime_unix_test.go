//go:build unix

package sqlstore_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used: the database's work is
// not in it, the schema checks are.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
