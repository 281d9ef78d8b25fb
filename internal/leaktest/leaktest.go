// Package leaktest checks that a test leaves no goroutine behind: what a
// component starts, its Close (or the end of its Run) must have ended.
// It is for tests only.
package leaktest

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Wait is how long Check's function waits for goroutines to end before it
// fails the test: goroutines that are ending (a closed connection's
// reader, a timer's function) get that long to finish.
const Wait = 2 * time.Second

// Check notes the goroutines running now and returns a function that
// waits (up to Wait) until every goroutine started since has ended, and
// otherwise fails t, listing the ones left with their stacks. Call it
// before starting the component, and the function once it is closed:
//
//	done := leaktest.Check(t)
//	c := start()
//	c.Close()
//	done()
//
// Whatever else the test starts in between (a store's connection pool, an
// HTTP client's idle connections) must be closed before the function is
// called too; tests that run in parallel with others cannot use it.
func Check(t testing.TB) func() {
	t.Helper()
	return check(t, Wait)
}

func check(t testing.TB, wait time.Duration) func() {
	before := map[string]bool{}
	for _, g := range goroutines() {
		before[id(g)] = true
	}
	return func() {
		t.Helper()
		var left []string
		for end := time.Now().Add(wait); ; {
			left = left[:0]
			for _, g := range goroutines() {
				if !before[id(g)] && !ignored(g) {
					left = append(left, g)
				}
			}
			if len(left) == 0 || time.Now().After(end) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if len(left) > 0 {
			t.Errorf("leaktest: %d goroutine(s) still running %v after the component was closed:\n\n%s", len(left), wait, strings.Join(left, "\n\n"))
		}
	}
}

// goroutines returns the stack of every goroutine but the caller's.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	gs := strings.Split(string(bytes.TrimSpace(buf)), "\n\n")
	return gs[1:] // the first is the caller's
}

// id is a stack's first line's goroutine number ("goroutine 12 [...]:").
func id(stack string) string {
	head, _, _ := strings.Cut(stack, "\n")
	f := strings.Fields(head)
	if len(f) < 2 {
		return head
	}
	return f[1]
}

// ignored reports goroutines of the testing package (subtests, their
// timers) rather than of the code under test.
func ignored(stack string) bool {
	return strings.Contains(stack, "\ncreated by testing.")
}
