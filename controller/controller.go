package controller

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// Source gives a controller the snapshot to evaluate against. Live and SQL
// implement it.
type Source interface {
	// Snapshot returns the rules for a controller whose scopes are set.
	// It may return a usable snapshot together with an error.
	Snapshot(ctx context.Context, set *scopes.Set) (*Snapshot, error)
}

// Reason says why a flag has its value. The names are OpenFeature's, plus
// OVERRIDE for values set by features.Override.
type Reason string

// Reasons.
const (
	// ReasonStatic: an unconditional rule with the default scope matched.
	ReasonStatic Reason = "STATIC"
	// ReasonTargetingMatch: a rule matched by a scope other than default
	// or by a condition.
	ReasonTargetingMatch Reason = "TARGETING_MATCH"
	// ReasonSplit: a rule whose condition is a rollout matched.
	ReasonSplit Reason = "SPLIT"
	// ReasonDefault: no rule matched; the value is the code default
	// (unset, "", for an undeclared flag).
	ReasonDefault Reason = "DEFAULT"
	// ReasonError: the matched rule's stored value fails the flag's type;
	// the value is the code default and Err says why.
	ReasonError Reason = "ERROR"
	// ReasonOverride: the value was overridden for a context.
	ReasonOverride Reason = "OVERRIDE"
)

// Result is one flag's answer with its details.
type Result struct {
	Flag string
	// Set is false when no rule matched: the flag is unset.
	Set bool
	// Value is the value's text: the winning rule's (a variant name
	// resolved to the variant's value), or the code default of a declared
	// flag when no rule matched or the rule's value is bad.
	Value string
	// Typed is the declared flag's value, parsed (or converted for the
	// application); nil for an undeclared flag.
	Typed any
	// Variant names the variant the value is, if any.
	Variant string
	// Scope, Priority and Condition identify the winning rule when Set.
	Scope     string
	Priority  int
	Condition string
	// Reason says why the flag has its value.
	Reason Reason
	// Err is the value's error (Reason ERROR) or else the first error met
	// while evaluating: a condition that failed at run time, or a rollout
	// without a targeting key (rules.ErrNoTargetingKey). Rules whose
	// condition failed did not match; a lower rule may have.
	Err error
	// Declared reports whether the flag has a declaration.
	Declared bool
}

// Controller evaluates flags for one request or job. It is safe for
// concurrent use; memoised lookups take no lock and do not allocate.
type Controller struct {
	ctx context.Context
	src Source
	// onFirstUse, if set, is called (under the lock) the first time each
	// flag is looked up.
	onFirstUse func(flag string)

	snap   atomic.Pointer[Snapshot]
	chunks []atomic.Pointer[memoChunk] // written before snap is stored

	sh  *shared // &own, or the controller WithTarget derived this one from
	own shared

	// The evaluation context, resolved under sh.mu on first need.
	target     *rules.Target
	targetFunc func() *rules.Target
}

// shared is the state a controller shares with those WithTarget derives
// from it: the scope set (each scope is still checked once per request)
// and what was looked up.
type shared struct {
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
	// Target is the evaluation context conditions and rollouts read.
	Target *rules.Target
	// TargetFunc, used when Target is nil, gives the evaluation context
	// lazily: it is called at most once, when a condition is first
	// evaluated.
	TargetFunc func() *rules.Target
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
	c := &Controller{ctx: ctx, src: src, onFirstUse: opts.OnFirstUse,
		target: opts.Target, targetFunc: opts.TargetFunc}
	c.sh = &c.own
	c.sh.set.Reset(env)
	return c
}

// WithTarget returns a controller for the same request with another
// evaluation context. It shares this controller's snapshot, scope checks
// and record of flags used; flag answers are memoised afresh.
func (c *Controller) WithTarget(t *rules.Target) *Controller {
	s := c.Snapshot()
	n := &Controller{ctx: c.ctx, src: c.src, onFirstUse: c.onFirstUse, sh: c.sh, target: t}
	n.chunks = make([]atomic.Pointer[memoChunk], (s.numFlags()+63)/64)
	n.snap.Store(s)
	return n
}

// Target returns the evaluation context (nil if none).
func (c *Controller) Target() *rules.Target {
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	return c.targetLocked()
}

func (c *Controller) targetLocked() *rules.Target {
	if c.target == nil && c.targetFunc != nil {
		c.target, c.targetFunc = c.targetFunc(), nil
	}
	return c.target
}

// GetFlag returns the flag's value, or "" when it is unset.
func (c *Controller) GetFlag(name string) string {
	v, _ := c.Lookup(name)
	return v
}

// Lookup returns the flag's value text and whether any rule matched.
func (c *Controller) Lookup(name string) (string, bool) {
	if r := c.match(name); r != nil {
		return r.text(), true
	}
	return "", false
}

// Typed returns a declared flag's typed value: the matched rule's, or the
// code default when no rule matched or the rule's value is bad. ok is false
// for undeclared flags. A memoised lookup takes no lock and allocates
// nothing.
func (c *Controller) Typed(name string) (v any, ok bool) {
	f, r := c.find(name)
	if f == nil || f.def == nil {
		return nil, false
	}
	return f.typedOf(r), true
}

// FlagRef names a flag and remembers where it was found in the last
// snapshot it was looked up in, so lookups through it skip hashing the
// name. Make one per flag (features.Define does) and share it.
type FlagRef struct {
	name  string
	cache atomic.Pointer[refCache]
}

type refCache struct {
	snap *Snapshot
	f    *flagEntry
}

// NewFlagRef returns a reference to the named flag.
func NewFlagRef(name string) *FlagRef { return &FlagRef{name: name} }

// Name returns the flag's name.
func (r *FlagRef) Name() string { return r.name }

// TypedRef is Typed through a FlagRef.
func (c *Controller) TypedRef(ref *FlagRef) (v any, ok bool) {
	if rc := ref.cache.Load(); rc != nil && rc.snap == c.snap.Load() && rc.f.def != nil {
		if r, done := c.memoised(rc.f); done {
			return rc.f.typedOf(r), true
		}
	}
	f, r := c.find(ref.name)
	if f == nil {
		return nil, false
	}
	ref.cache.Store(&refCache{snap: c.snap.Load(), f: f})
	if f.def == nil {
		return nil, false
	}
	return f.typedOf(r), true
}

// Evaluate returns the flag's answer with its details.
func (c *Controller) Evaluate(name string) Result {
	f, r := c.find(name)
	if f == nil {
		return Result{Flag: name, Reason: ReasonDefault}
	}
	if f.conditional {
		// Walk again for the error details: scopes are memoised and
		// conditions are pure, so the answer is the one memoised.
		c.sh.mu.Lock()
		i, err := f.resolve(&c.sh.set, c.targetLocked())
		c.sh.mu.Unlock()
		return f.result(f.rule(i), err)
	}
	return f.result(r, nil)
}

// match returns the winning rule, memoised.
func (c *Controller) match(name string) *rule {
	_, r := c.find(name)
	return r
}

// find returns the flag's entry (nil if the snapshot does not know it) and
// winning rule, memoised.
func (c *Controller) find(name string) (*flagEntry, *rule) {
	if s := c.snap.Load(); s != nil {
		if f := s.flags[name]; f != nil {
			if r, done := c.memoised(f); done {
				return f, r
			}
		}
	}
	return c.slow(name)
}

// memoised returns f's memoised winning rule (nil: unset) and whether f
// has been evaluated. f must belong to the controller's snapshot.
func (c *Controller) memoised(f *flagEntry) (*rule, bool) {
	if ch := c.chunks[f.idx>>6].Load(); ch != nil {
		if v := ch[f.idx&63].Load(); v > 0 {
			return f.rule(int(v) - 2), true
		}
	}
	return nil, false
}

// slow evaluates a flag not yet memoised: it walks the flag's rules in
// descending priority and the first rule whose scope is active and whose
// condition holds wins.
func (c *Controller) slow(name string) (*flagEntry, *rule) {
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	s := c.pinLocked()
	f := s.flags[name]
	if f == nil {
		if !slices.Contains(c.sh.unknown, name) {
			c.sh.unknown = append(c.sh.unknown, name)
			if c.onFirstUse != nil {
				c.onFirstUse(name)
			}
		}
		return nil, nil
	}
	slot := &c.chunks[f.idx>>6]
	ch := slot.Load()
	if ch == nil {
		ch = new(memoChunk)
		slot.Store(ch)
	}
	if v := ch[f.idx&63].Load(); v > 0 { // another goroutine won
		return f, f.rule(int(v) - 2)
	}
	if c.onFirstUse != nil {
		c.onFirstUse(name)
	}
	var t *rules.Target
	if f.conditional {
		t = c.targetLocked()
	}
	i, _ := f.resolve(&c.sh.set, t)
	ch[f.idx&63].Store(int32(i) + 2)
	return f, f.rule(i)
}

// pinLocked loads the controller's snapshot on first use. c.sh.mu is held.
func (c *Controller) pinLocked() *Snapshot {
	if s := c.snap.Load(); s != nil {
		return s
	}
	var s *Snapshot
	if c.src != nil {
		s, c.sh.err = c.src.Snapshot(c.ctx, &c.sh.set)
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
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	return c.pinLocked()
}

// Err returns the error the source gave when the snapshot was loaded, if
// any. The controller then evaluated against whatever the source could
// still offer (the last known rules, or none).
func (c *Controller) Err() error {
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	return c.sh.err
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
	c.sh.mu.Lock()
	for _, n := range c.sh.unknown {
		out = append(out, Result{Flag: n, Reason: ReasonDefault})
	}
	c.sh.mu.Unlock()
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
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	return c.sh.set.Checked()
}

// UnclaimedScopes returns scopes checked so far that no handler claims.
func (c *Controller) UnclaimedScopes() []string {
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	return c.sh.set.Unclaimed()
}

// CurrentScope returns the scope of the flag's winning rule.
func (c *Controller) CurrentScope(name string) (string, bool) {
	if r := c.match(name); r != nil {
		return r.Scope, true
	}
	return "", false
}

// DefaultValue returns the value of the flag's unconditional rule with
// scope "default", checking no scopes.
func (c *Controller) DefaultValue(name string) (string, bool) {
	s := c.Snapshot()
	if f := s.flags[name]; f != nil {
		for _, r := range f.rules {
			if r.Scope == "default" && r.Condition == "" {
				return r.text(), true
			}
		}
	}
	return "", false
}
