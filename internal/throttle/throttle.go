// Package throttle holds the admin server's and OFREP's abuse limits: a
// bounded table of failed authentications per client address with
// exponential backoff (Failures), and caps on what one key or address
// may hold open at once (Slots).
package throttle

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for FailureConfig's zero values.
const (
	// DefaultFree failures in a row may be made without waiting; the
	// attempt after them waits Base, each further one twice as long.
	DefaultFree = 10
	// DefaultBase is the wait after the first failure past the free ones.
	DefaultBase = time.Second
	// DefaultMax caps the wait.
	DefaultMax = 5 * time.Minute
	// DefaultForget: an address with no failure for this long starts
	// afresh.
	DefaultForget = 15 * time.Minute
	// DefaultMaxEntries bounds the table (about 100 bytes an entry).
	DefaultMaxEntries = 10000
)

// FailureConfig configures a Failures table; zero fields take defaults.
type FailureConfig struct {
	// Free is how many failures in a row an address may make without
	// waiting.
	Free int
	// Base is the wait before the attempt after the Free failures; each
	// further failure doubles it, up to Max.
	Base, Max time.Duration
	// Forget: an address with no failure for this long starts afresh.
	Forget time.Duration
	// MaxEntries bounds the addresses remembered.
	MaxEntries int
}

// Failures counts failed authentications per client address. After Free
// failures in a row an address must wait Base before its next attempt,
// then 2×Base, 4×Base... up to Max; a success (Succeeded) or Forget of
// quiet clears it. Only guesses count: a failing key the address already
// sent among its last four failures is not counted again (a client
// retrying its one revoked, mistyped or not-yet-known key is not
// guessing). IPv6 addresses count per /64 (one host's usual
// allocation). The table holds at most MaxEntries addresses: when full,
// the address whose last failure is oldest is dropped, so a flood of
// distinct addresses costs bounded memory. Safe for concurrent use.
type Failures struct {
	free           int
	base, max, fgt time.Duration
	maxEntries     int
	seed           maphash.Seed
	mu             sync.Mutex
	m              map[netip.Addr]*entry
	head, tail     *entry       // least recently failed first
	blockedUntil   atomic.Int64 // the latest end of any wait (unix ns), 0 once Wait saw it pass: before it, Wait must look
	size           atomic.Int64
	throttled      atomic.Uint64
}

type entry struct {
	addr       netip.Addr
	n          int                // failures in a row
	last       int64              // unix ns of the last failure
	until      int64              // unix ns before which attempts are refused
	recent     [recentKeys]uint64 // hashes of the last failing keys
	prev, next *entry
}

// recentKeys is how many failing keys per address are remembered.
const recentKeys = 4

// seen reports whether key hash h is among e's recent failing keys, and
// remembers it if not.
func (e *entry) seen(h uint64) bool {
	for _, r := range e.recent {
		if r == h {
			return true
		}
	}
	copy(e.recent[1:], e.recent[:recentKeys-1])
	e.recent[0] = h
	return false
}

// NewFailures returns an empty table.
func NewFailures(cfg FailureConfig) *Failures {
	f := &Failures{free: cfg.Free, base: cfg.Base, max: cfg.Max, fgt: cfg.Forget, maxEntries: cfg.MaxEntries, m: map[netip.Addr]*entry{}, seed: maphash.MakeSeed()}
	if f.free <= 0 {
		f.free = DefaultFree
	}
	if f.base <= 0 {
		f.base = DefaultBase
	}
	if f.max <= 0 {
		f.max = DefaultMax
	}
	f.max = max(f.max, f.base)
	if f.fgt <= 0 {
		f.fgt = DefaultForget
	}
	if f.maxEntries <= 0 {
		f.maxEntries = DefaultMaxEntries
	}
	return f
}

// addrKey is the table's key for a: IPv6 addresses by their /64.
func addrKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// Waiting reports whether some address may be waiting: when false, Wait
// would return 0 for every address. It is one atomic load, for hot paths
// that would rather not read the clock.
func (f *Failures) Waiting() bool { return f.blockedUntil.Load() != 0 }

// Wait reports how long the client at a must still wait before its next
// attempt; 0 means it may try now. A refusal counts in Throttled. While
// no address is waiting it takes no lock.
func (f *Failures) Wait(a netip.Addr, now time.Time) time.Duration {
	t := now.UnixNano()
	if u := f.blockedUntil.Load(); t >= u {
		if u != 0 {
			f.blockedUntil.CompareAndSwap(u, 0) // every wait is over
		}
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[addrKey(a)]
	if e == nil || t >= e.until {
		return 0
	}
	f.throttled.Add(1)
	return time.Duration(e.until - t)
}

// Failed records a failed attempt with key by the client at a; a key
// among the address's last few failing ones is not counted again ("" is
// always counted).
func (f *Failures) Failed(a netip.Addr, key string, now time.Time) {
	h := uint64(0)
	if key != "" {
		h = maphash.String(f.seed, key) | 1 // never 0, the empty slot
	}
	k, t := addrKey(a), now.UnixNano()
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[k]
	if e == nil {
		for len(f.m) >= f.maxEntries {
			f.remove(f.head)
		}
		e = &entry{addr: k}
		f.m[k] = e
		f.size.Store(int64(len(f.m)))
	} else {
		if t-e.last > int64(f.fgt) {
			e.n, e.recent = 0, [recentKeys]uint64{}
		}
		f.unlink(e)
	}
	f.push(e)
	if h != 0 && e.seen(h) {
		return // a retry, not a guess
	}
	e.n++
	e.last = t
	if e.n >= f.free {
		d := f.max
		if shift := e.n - f.free; shift < 40 {
			d = min(f.base<<shift, f.max)
		}
		e.until = t + int64(d)
		if e.until > f.blockedUntil.Load() {
			f.blockedUntil.Store(e.until)
		}
	}
}

// Succeeded clears the failures of the client at a. While the table is
// empty it takes no lock.
func (f *Failures) Succeeded(a netip.Addr) {
	if f.size.Load() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.m[addrKey(a)]; e != nil {
		f.remove(e)
	}
}

// Len is the number of addresses in the table.
func (f *Failures) Len() int { return int(f.size.Load()) }

// Throttled is the number of attempts Wait has refused.
func (f *Failures) Throttled() uint64 { return f.throttled.Load() }

func (f *Failures) remove(e *entry) {
	f.unlink(e)
	delete(f.m, e.addr)
	f.size.Store(int64(len(f.m)))
}

func (f *Failures) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		f.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		f.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (f *Failures) push(e *entry) {
	e.prev = f.tail
	if f.tail != nil {
		f.tail.next = e
	} else {
		f.head = e
	}
	f.tail = e
}

// Slots caps how many of something (open streams) each key holds at once.
// Safe for concurrent use; its memory is bounded by the slots held.
type Slots[K comparable] struct {
	max  int
	mu   sync.Mutex
	held map[K]int
}

// NewSlots returns a cap of max per key (max < 1: no cap).
func NewSlots[K comparable](max int) *Slots[K] {
	return &Slots[K]{max: max, held: map[K]int{}}
}

// Max is the cap per key (0: none).
func (s *Slots[K]) Max() int { return max(s.max, 0) }

// Acquire takes a slot for k, unless k holds Max already.
func (s *Slots[K]) Acquire(k K) bool {
	if s.max < 1 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[k] >= s.max {
		return false
	}
	s.held[k]++
	return true
}

// Release gives back a slot Acquire took.
func (s *Slots[K]) Release(k K) {
	if s.max < 1 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[k] <= 1 {
		delete(s.held, k)
		return
	}
	s.held[k]--
}

// Keys is the number of keys holding slots.
func (s *Slots[K]) Keys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}
