//go:build !unix

package rules_test

import "time"

var start0 = time.Now()

// cpuTime stands in for the process's CPU time with the wall clock.
func cpuTime() time.Duration { return time.Since(start0) }
