package leaktest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}

// parked is a goroutine the test leaks, named in its stack.
func parked(stop chan struct{}) { <-stop }

// TestCheck: a goroutine still running is reported with its stack; one
// that ends within the wait, and goroutines from before, are not.
func TestCheck(t *testing.T) {
	stop := make(chan struct{})
	older := make(chan struct{})
	go parked(older) // running before Check: not reported
	defer close(older)
	for _, tc := range []struct {
		name  string
		start func()
		want  string
	}{
		{"none", func() {}, ""},
		{"ends in time", func() { go time.Sleep(20 * time.Millisecond) }, ""},
		{"left running", func() { go parked(stop) }, "leaktest.parked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			done := check(r, 200*time.Millisecond)
			tc.start()
			done()
			got := strings.Join(r.errs, "\n")
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("reported %q, want %q", got, tc.want)
			}
			if tc.want != "" && strings.Count(got, "leaktest.parked") != 1 {
				t.Errorf("the goroutine from before is reported too:\n%s", got)
			}
		})
	}
	close(stop)
}
