// Package memtest holds the memory measurements and documents that tests
// of several packages share: how much a piece of work allocates, and a
// JSON value whose decoded form is several times its text, as the probe's
// 7.7 MB value was. Tests only.
package memtest

import (
	"fmt"
	"runtime"
	"strings"
)

// Allocated returns the bytes the process allocated while f ran (after a
// collection, so that what came before is not counted).
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// LargeDoc is a JSON array of about size bytes of one-key objects: its
// decoded form (maps) is several times its text.
func LargeDoc(size int) string {
	var b strings.Builder
	b.Grow(size + 128)
	b.WriteByte('[')
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"k":"%06d-%s"}`, i, strings.Repeat("y", 90))
	}
	b.WriteByte(']')
	return b.String()
}
