package controller

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// MaxUsageKeys bounds the distinct answers (variant, or value when the
// answer is no variant) counted apart for one flag and reason; further
// ones are counted together as UsageCount.Other.
const MaxUsageKeys = 16

// MaxUsageValue bounds, in bytes, the value text a count is keyed by:
// longer values are cut (at a character boundary).
const MaxUsageValue = 200

// UsageCount is how many times a flag was evaluated to one answer.
type UsageCount struct {
	Flag   string
	Reason Reason
	// Variant is the variant served; Value the value's text when the
	// answer is no variant (cut to MaxUsageValue bytes). Both are empty
	// for an answer with no value (an undeclared flag no rule set, an
	// ERROR) and when Other is true.
	Variant string
	Value   string
	// Other: the answers beyond the flag's first MaxUsageKeys, counted
	// together.
	Other bool
	Count int64
}

// UsageReport is what a process flushes: the counts since its last flush
// that succeeded, and who counted them.
type UsageReport struct {
	// Role and Host name the server (its role, for server.ROLE scopes,
	// and its host name).
	Role, Host string
	// At is when the counts were read; the day they are stored under is
	// At's, in UTC, and it is the flags' last evaluated time (counts are
	// read every flush interval, which is the precision).
	At     time.Time
	Counts []UsageCount
}

// Usage counts evaluations per flag, reason and answer, for a process's
// whole life: snapshots built with it (BuildOptions.Usage) point their
// rules at its counters, so counts survive snapshot swaps. Counting is an
// atomic add on a counter found when the snapshot was built: no lock, no
// allocation, no map look-up. It is safe for concurrent use.
type Usage struct {
	mu    sync.Mutex // guards flags; taken by builds and reads, never by evaluations
	flags map[string]*flagUsage
	// flushed is the counts last reported as flushed, per counter; under fmu.
	fmu     sync.Mutex
	flushed map[*usageCounter]int64
}

// NewUsage returns an empty Usage.
func NewUsage() *Usage {
	return &Usage{flags: make(map[string]*flagUsage), flushed: make(map[*usageCounter]int64)}
}

type flagUsage struct {
	counters []*usageCounter // at most MaxUsageKeys keyed ones, plus one Other per reason
	keyed    map[Reason]int
}

// usageCounter counts one flag's answers of one key. The key is immutable.
type usageCounter struct {
	key UsageCount // Count unused
	n   atomic.Int64
	_   [40]byte // keep hot counters of different flags off one cache line
}

// add counts one evaluation; u may be nil (counting off).
func (u *usageCounter) add() {
	if u != nil {
		u.n.Add(1)
	}
}

// counter returns the counter for flag's answer (reason, variant, value),
// making it if needed. Builds call it, under no lock of theirs.
func (u *Usage) counter(flag string, reason Reason, variant, value string) *usageCounter {
	if u == nil {
		return nil
	}
	if variant != "" {
		value = ""
	}
	value = cut(value, MaxUsageValue)
	u.mu.Lock()
	defer u.mu.Unlock()
	fu := u.flags[flag]
	if fu == nil {
		fu = &flagUsage{keyed: make(map[Reason]int)}
		u.flags[flag] = fu
	}
	for _, c := range fu.counters {
		if !c.key.Other && c.key.Reason == reason && c.key.Variant == variant && c.key.Value == value {
			return c
		}
	}
	key := UsageCount{Flag: flag, Reason: reason, Variant: variant, Value: value}
	if fu.keyed[reason] >= MaxUsageKeys {
		for _, c := range fu.counters {
			if c.key.Other && c.key.Reason == reason {
				return c
			}
		}
		key = UsageCount{Flag: flag, Reason: reason, Other: true}
	} else {
		fu.keyed[reason]++
	}
	c := &usageCounter{key: key}
	fu.counters = append(fu.counters, c)
	return c
}

// cut returns s cut to at most n bytes at a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n])
}

// Counts returns every count since the process started, sorted by flag,
// reason, variant and value; counters never evaluated are left out.
func (u *Usage) Counts() []UsageCount {
	return u.read(nil)
}

// read returns the counts, less base's (nil: none), leaving out zeros.
func (u *Usage) read(base map[*usageCounter]int64) []UsageCount {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	var all []*usageCounter
	for _, fu := range u.flags {
		all = append(all, fu.counters...)
	}
	u.mu.Unlock()
	out := make([]UsageCount, 0, len(all))
	for _, c := range all {
		n := c.n.Load() - base[c]
		if n == 0 {
			continue
		}
		k := c.key
		k.Count = n
		out = append(out, k)
	}
	slices.SortFunc(out, compareUsage)
	return out
}

func compareUsage(a, b UsageCount) int {
	if c := strings.Compare(a.Flag, b.Flag); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Reason), string(b.Reason)); c != 0 {
		return c
	}
	if a.Other != b.Other {
		if a.Other {
			return 1
		}
		return -1
	}
	if c := strings.Compare(a.Variant, b.Variant); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}

// FlagEvaluations returns each flag's evaluations since the process
// started, by reason.
func (u *Usage) FlagEvaluations() map[string]map[Reason]int64 {
	out := make(map[string]map[Reason]int64)
	for _, c := range u.Counts() {
		m := out[c.Flag]
		if m == nil {
			m = make(map[Reason]int64)
			out[c.Flag] = m
		}
		m[c.Reason] += c.Count
	}
	return out
}

// Pending is a read of the counts not yet flushed. Give it back to Flushed
// once they are stored; if they are not, the next Pending includes them
// again: counts are never lost and, as long as one Pending is outstanding
// at a time, never reported twice.
type Pending struct {
	Counts []UsageCount
	upto   map[*usageCounter]int64
}

// Pending returns the counts since the last Flushed.
func (u *Usage) Pending() Pending {
	if u == nil {
		return Pending{}
	}
	u.fmu.Lock()
	base := u.flushed
	u.fmu.Unlock()
	// Read each counter once: the report and the mark must agree.
	u.mu.Lock()
	var all []*usageCounter
	for _, fu := range u.flags {
		all = append(all, fu.counters...)
	}
	u.mu.Unlock()
	p := Pending{upto: make(map[*usageCounter]int64, len(all))}
	for _, c := range all {
		n := c.n.Load()
		p.upto[c] = n
		if d := n - base[c]; d != 0 {
			k := c.key
			k.Count = d
			p.Counts = append(p.Counts, k)
		}
	}
	slices.SortFunc(p.Counts, compareUsage)
	return p
}

// Flushed records that p's counts are stored.
func (u *Usage) Flushed(p Pending) {
	if u == nil || p.upto == nil {
		return
	}
	u.fmu.Lock()
	u.flushed = p.upto
	u.fmu.Unlock()
}
