package controller

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/scopeflags/scopeflags/scopes"
)

// Source gives a controller the snapshot to evaluate against. Live and SQL
// implement it.
type Source interface {
	// Snapshot returns the rules for a controller whose scopes are set.
	// It may return a usable snapshot together with an error.
	Snapshot(ctx context.Context, set *scopes.Set) (*Snapshot, error)
}

// Result is one flag's answer.
type Result struct {
	Flag string
	// Set is false when no rule matched: the flag is unset.
	Set bool
	// Value, Scope and Priority come from the winning rule when Set.
	Value    string
	Scope    string
	Priority int
}

// Controller evaluates flags for one request or job. It is safe for
// concurrent use; memoised lookups take no lock and do not allocate.
type Controller struct {
	ctx context.Context
	src Source
	// OnFirstUse, if set before the first lookup, is called (under the
	// controller's lock) the first time each flag is looked up.
	onFirstUse func(flag string)

	snap   atomic.Pointer[Snapshot]
	chunks []atomic.Pointer[memoChunk] // written before snap is stored

	mu      sync.Mutex
	set     scopes.Set
	unknown []string // flags looked up that the snapshot does not know
	err     error
}

// memoChunk memoises 64 flags: 0 not yet looked up, 1 unset, k+2 rule k.
type memoChunk [64]atomic.Int32

// Options configure a Controller.
type Options struct {
	// OnFirstUse is called the first time each flag is looked up, under
	// the controller's lock. Keep it cheap.
	OnFirstUse func(flag string)
}

// New returns a controller that evaluates env's scopes against src's rules.
// Nothing is loaded until the first lookup. ctx is used for loading and is
// given to scope predicates through env.Context when that is nil.
func New(ctx context.Context, src Source, env scopes.Env, opts Options) *Controller {
	if ctx == nil {
		ctx = context.Background()
	}
	if env.Context == nil {
		env.Context = ctx
	}
	c := &Controller{ctx: ctx, src: src, onFirstUse: opts.OnFirstUse}
	c.set.Reset(env)
	return c
}

// GetFlag returns the flag's value, or "" when it is unset.
func (c *Controller) GetFlag(name string) string {
	v, _ := c.Lookup(name)
	return v
}

// Lookup returns the flag's value and whether any rule matched.
func (c *Controller) Lookup(name string) (string, bool) {
	if r := c.match(name); r != nil {
		return r.Value, true
	}
	return "", false
}

// Evaluate returns the flag's full answer: value and winning rule.
func (c *Controller) Evaluate(name string) Result {
	res := Result{Flag: name}
	if r := c.match(name); r != nil {
		res.Set, res.Value, res.Scope, res.Priority = true, r.Value, r.Scope, r.Priority
	}
	return res
}

// match returns the winning rule, memoised.
func (c *Controller) match(name string) *rule {
	if s := c.snap.Load(); s != nil {
		if f := s.flags[name]; f != nil {
			if ch := c.chunks[f.idx>>6].Load(); ch != nil {
				if v := ch[f.idx&63].Load(); v == 1 {
					return nil
				} else if v > 1 {
					return &f.rules[v-2]
				}
			}
		}
	}
	return c.slow(name)
}

// slow evaluates a flag not yet memoised: it walks the flag's rules in
// descending priority and the first active scope wins.
func (c *Controller) slow(name string) *rule {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.pinLocked()
	f := s.flags[name]
	if f == nil {
		if !slices.Contains(c.unknown, name) {
			c.unknown = append(c.unknown, name)
			if c.onFirstUse != nil {
				c.onFirstUse(name)
			}
		}
		return nil
	}
	slot := &c.chunks[f.idx>>6]
	ch := slot.Load()
	if ch == nil {
		ch = new(memoChunk)
		slot.Store(ch)
	}
	switch v := ch[f.idx&63].Load(); v { // another goroutine may have won
	case 0:
	case 1:
		return nil
	default:
		return &f.rules[v-2]
	}
	if c.onFirstUse != nil {
		c.onFirstUse(name)
	}
	for i := range f.rules {
		if c.set.Active(f.rules[i].scope) {
			ch[f.idx&63].Store(int32(i) + 2)
			return &f.rules[i]
		}
	}
	ch[f.idx&63].Store(1)
	return nil
}

// pinLocked loads the controller's snapshot on first use. c.mu is held.
func (c *Controller) pinLocked() *Snapshot {
	if s := c.snap.Load(); s != nil {
		return s
	}
	var s *Snapshot
	if c.src != nil {
		s, c.err = c.src.Snapshot(c.ctx, &c.set)
	}
	if s == nil {
		s = emptySnapshot
	}
	c.chunks = make([]atomic.Pointer[memoChunk], (s.numFlags()+63)/64)
	c.snap.Store(s)
	return s
}

// Snapshot returns the snapshot this controller evaluates against, loading
// it if no lookup has yet.
func (c *Controller) Snapshot() *Snapshot {
	if s := c.snap.Load(); s != nil {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinLocked()
}

// Err returns the error the source gave when the snapshot was loaded, if
// any. The controller then evaluated against whatever the source could
// still offer (the last known rules, or none).
func (c *Controller) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AllFlags evaluates every flag that has rules, sorted by name; flags whose
// rules all missed are present with Set false.
func (c *Controller) AllFlags() []Result {
	s := c.Snapshot()
	out := make([]Result, 0, len(s.names))
	for _, n := range s.names {
		if len(s.flags[n].rules) > 0 {
			out = append(out, c.Evaluate(n))
		}
	}
	return out
}

// UsedFlags returns every flag looked up so far, sorted by name, with its
// answer.
func (c *Controller) UsedFlags() []Result {
	s := c.snap.Load()
	if s == nil {
		return nil
	}
	var out []Result
	for _, n := range s.names {
		f := s.flags[n]
		if ch := c.chunks[f.idx>>6].Load(); ch != nil && ch[f.idx&63].Load() != 0 {
			out = append(out, c.Evaluate(n))
		}
	}
	c.mu.Lock()
	for _, n := range c.unknown {
		out = append(out, Result{Flag: n})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Result) int {
		switch {
		case a.Flag < b.Flag:
			return -1
		case a.Flag > b.Flag:
			return 1
		}
		return 0
	})
	return out
}

// UsedScopes returns the scopes checked so far, in order, with answers.
func (c *Controller) UsedScopes() []scopes.Check {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set.Checked()
}

// UnclaimedScopes returns scopes checked so far that no handler claims.
func (c *Controller) UnclaimedScopes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set.Unclaimed()
}

// CurrentScope returns the scope of the flag's winning rule.
func (c *Controller) CurrentScope(name string) (string, bool) {
	if r := c.match(name); r != nil {
		return r.Scope, true
	}
	return "", false
}

// DefaultValue returns the value of the flag's rule with scope "default",
// checking no scopes.
func (c *Controller) DefaultValue(name string) (string, bool) {
	s := c.Snapshot()
	if f := s.flags[name]; f != nil {
		for _, r := range f.rules {
			if r.Scope == "default" {
				return r.Value, true
			}
		}
	}
	return "", false
}
