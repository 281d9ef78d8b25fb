package throttle_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/scopeflags/scopeflags/internal/throttle"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestBackoff(t *testing.T) {
	f := throttle.NewFailures(throttle.FailureConfig{Free: 3, Base: time.Second, Max: 10 * time.Second})
	a := netip.MustParseAddr("198.51.100.7")
	other := netip.MustParseAddr("198.51.100.8")
	now := t0
	var waits []time.Duration
	for range 9 {
		if w := f.Wait(a, now); w != 0 {
			t.Fatalf("attempt refused at the moment its wait ended: %v", w)
		}
		f.Failed(a, "", now)
		w := f.Wait(a, now)
		waits = append(waits, w)
		now = now.Add(w)
	}
	want := []time.Duration{0, 0, 1, 2, 4, 8, 10, 10, 10}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Fatalf("waits %v, want %v seconds", waits, want)
		}
	}
	if w := f.Wait(other, now.Add(-time.Second)); w != 0 {
		t.Fatalf("another address waits %v", w)
	}
	if got := f.Throttled(); got != 7 {
		t.Fatalf("Throttled = %d, want 7", got)
	}
	if !f.Waiting() {
		t.Fatal("not Waiting while an address waits")
	}
	if w := f.Wait(a, now.Add(time.Hour)); w != 0 || f.Waiting() {
		t.Fatalf("an hour later: wait %v, Waiting %v", w, f.Waiting())
	}
	f.Succeeded(a)
	if w := f.Wait(a, now.Add(-time.Second)); w != 0 || f.Len() != 0 {
		t.Fatalf("after a success: wait %v, len %d", w, f.Len())
	}
}

// TestRetryIsNotAGuess: the same failing key sent again is not counted;
// distinct keys are.
func TestRetryIsNotAGuess(t *testing.T) {
	f := throttle.NewFailures(throttle.FailureConfig{Free: 3})
	a := netip.MustParseAddr("198.51.100.7")
	for range 100 {
		f.Failed(a, "sf_revoked", t0)
		f.Failed(a, "sf_not_yet_known", t0)
	}
	if w := f.Wait(a, t0); w != 0 {
		t.Fatalf("two keys retried: wait %v", w)
	}
	f.Failed(a, "guess 1", t0)
	if w := f.Wait(a, t0); w != time.Second {
		t.Fatalf("a third distinct key: wait %v, want 1s", w)
	}
}

func TestForget(t *testing.T) {
	f := throttle.NewFailures(throttle.FailureConfig{Free: 2, Base: time.Second, Forget: time.Minute})
	a := netip.MustParseAddr("198.51.100.7")
	f.Failed(a, "", t0)
	f.Failed(a, "", t0.Add(time.Second))
	if w := f.Wait(a, t0.Add(time.Second)); w != time.Second {
		t.Fatalf("wait %v", w)
	}
	// Quiet for longer than Forget: the count starts afresh.
	later := t0.Add(2 * time.Minute)
	f.Failed(a, "", later)
	if w := f.Wait(a, later); w != 0 {
		t.Fatalf("wait %v after being forgotten", w)
	}
}

func TestIPv6By64(t *testing.T) {
	f := throttle.NewFailures(throttle.FailureConfig{Free: 1})
	f.Failed(netip.MustParseAddr("2001:db8:1:2::1"), "", t0)
	f.Failed(netip.MustParseAddr("2001:db8:1:2:ffff::9"), "", t0)
	if w := f.Wait(netip.MustParseAddr("2001:db8:1:2::77"), t0); w == 0 {
		t.Fatal("addresses of one /64 counted apart")
	}
	if w := f.Wait(netip.MustParseAddr("2001:db8:1:3::1"), t0); w != 0 {
		t.Fatal("another /64 throttled")
	}
}

// TestBounded: 100,000 distinct addresses failing leave at most
// MaxEntries in the table, the newest; the oldest are dropped.
func TestBounded(t *testing.T) {
	f := throttle.NewFailures(throttle.FailureConfig{Free: 1, MaxEntries: 1000})
	now := t0
	var last netip.Addr
	for i := range 100_000 {
		last = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		f.Failed(last, "", now)
		f.Failed(last, "", now)
		if f.Len() > 1000 {
			t.Fatalf("%d entries after %d addresses", f.Len(), i+1)
		}
	}
	if f.Len() != 1000 {
		t.Fatalf("len %d", f.Len())
	}
	if f.Wait(last, now) == 0 {
		t.Fatal("the newest address was dropped")
	}
	if f.Wait(netip.AddrFrom4([4]byte{10, 0, 0, 0}), now) != 0 {
		t.Fatal("the oldest address was kept")
	}
}

func TestSlots(t *testing.T) {
	s := throttle.NewSlots[string](2)
	if !s.Acquire("a") || !s.Acquire("a") || s.Acquire("a") {
		t.Fatal("a: want two slots, not three")
	}
	if !s.Acquire("b") {
		t.Fatal("b refused while a is full")
	}
	s.Release("a")
	if !s.Acquire("a") {
		t.Fatal("a refused after a release")
	}
	s.Release("a")
	s.Release("a")
	s.Release("b")
	if s.Keys() != 0 {
		t.Fatalf("%d keys left", s.Keys())
	}
	none := throttle.NewSlots[int](0)
	for range 100 {
		if !none.Acquire(1) {
			t.Fatal("no cap refused")
		}
	}
}
