package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

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
	// ReasonError: the value is the code default (unset for an undeclared
	// flag) and Err says why: the matched rule's stored value fails the
	// flag's type, or a rule reached could not be decided (its stored
	// condition is refused, or application code it needed panicked or was
	// still running).
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
	// application); nil for an undeclared flag. It is the snapshot's own
	// value, shared with every reader of the snapshot and not copied for
	// the Result (so that readers of the text, such as OFREP, pay for no
	// copy): read it, never modify it. Controller.Typed, and the features
	// package's typed reads, return a copy the caller may modify.
	Typed any
	// Variant names the variant the value is, if any.
	Variant string
	// Scope, Priority and Condition identify the winning rule when Set,
	// or the rule that could not be decided (Reason ERROR).
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
//
// Application code the controller calls (scope predicates, the user, page
// and target functions) never runs under its lock: such a callback may read
// flags of the same request. A value a callback needs while it is itself
// being resolved makes that lookup answer ERROR (scopes.ErrInProgress),
// unmemoised, instead of deadlocking. A panic in a callback becomes reason
// ERROR for the flags that needed it, logged once per callback site.
type Controller struct {
	ctx context.Context
	src Source
	// onFirstUse, if set, is called (under no lock) the first time each
	// flag is looked up.
	onFirstUse func(flag string)
	log        *slog.Logger
	probe      bool

	// span is ctx's recording span (nil: none), looked up at the first
	// evaluation (spanState goes lazyNew -> lazyDone).
	span      trace.Span
	spanState atomic.Int32

	snap   atomic.Pointer[Snapshot]
	chunks []atomic.Pointer[memoChunk] // written before snap is stored

	sh  *shared // &own, or the controller WithTarget derived this one from
	own shared

	// The evaluation context: target, or targetFunc's answer resolved
	// once (tstate goes lazyNew -> lazyRunning -> lazyDone).
	target     *rules.Target
	targetFunc func() *rules.Target
	tstate     atomic.Int32
	tstalled   atomic.Bool // a wait for targetFunc timed out: later ones do not wait
	tval       *rules.Target
	terr       error
}

// shared is the state a controller shares with those WithTarget derives
// from it: the scope set (each scope is still checked once per request)
// and what was looked up. mu is never held while application code runs.
type shared struct {
	mu      sync.Mutex
	set     scopes.Set
	unknown []string // flags looked up that the snapshot does not know
	dropped int      // unknown flags not recorded: over MaxUnknownPerRequest
	err     error
}

// MaxUnknownPerRequest bounds the flags a controller records as looked up
// but unknown to its snapshot; further ones are only counted.
const MaxUnknownPerRequest = 64

// memoChunk memoises the answers of 64 flags (see the memo constants).
// Errors met are kept beside, in a table made only when needed. The
// answers hold no pointers, so the garbage collector need not scan them.
type memoChunk struct {
	errs atomic.Pointer[[64]atomic.Pointer[memoErr]]
	v    [64]atomic.Int32
}

// Memoised answers: 0 is not yet looked up; memoRule+k is rule k won.
const (
	memoUnset int32 = 1 // no rule matched
	memoFail  int32 = 2 // ERROR: see memoErr
	memoRule  int32 = 3
)

// memoErr is a memoised answer's error, and for an ERROR answer the index
// of the rule that could not be decided.
type memoErr struct {
	err  error
	fail int
}

// winner returns the winning rule of memoised answer v, nil for none. f
// may be nil (an unknown flag) when v is not a rule.
func (f *flagEntry) winner(v int32) *rule {
	if v >= memoRule {
		return &f.rules[v-memoRule]
	}
	return nil
}

// Options configure a Controller.
type Options struct {
	// OnFirstUse is called the first time each flag is looked up (for a
	// flag the snapshot does not know: the first MaxUnknownPerRequest
	// valid names). It runs under no lock; keep it cheap.
	OnFirstUse func(flag string)
	// Target is the evaluation context conditions and rollouts read.
	Target *rules.Target
	// TargetFunc, used when Target is nil, gives the evaluation context
	// lazily: it is called at most once, when a condition is first
	// evaluated.
	TargetFunc func() *rules.Target
	// Log receives, once per site, panics recovered from application
	// callbacks; slog.Default() when nil.
	Log *slog.Logger
	// Probe marks a controller that looks at flags on a person's behalf
	// (the admin explain, the flag pages) rather than serving them: its
	// evaluations are traced but neither counted nor exposed, so looking
	// at a flag does not make it look used.
	Probe bool
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
	c := &Controller{ctx: ctx, src: src, onFirstUse: opts.OnFirstUse, log: opts.Log, probe: opts.Probe,
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
	n := &Controller{ctx: c.ctx, src: c.src, onFirstUse: c.onFirstUse, log: c.log, probe: c.probe, sh: c.sh, target: t}
	n.chunks = make([]atomic.Pointer[memoChunk], (s.numFlags()+63)/64)
	n.snap.Store(s)
	return n
}

// Target returns the evaluation context (nil if none, or if its function
// failed).
func (c *Controller) Target() *rules.Target {
	t, _ := c.evalTarget()
	return t
}

// evalTarget returns the evaluation context, calling TargetFunc once. The
// error is a *scopes.PanicError if it panicked, or wraps
// scopes.ErrInProgress while it runs (it read a conditional flag).
func (c *Controller) evalTarget() (*rules.Target, error) {
	if c.target != nil || c.targetFunc == nil {
		return c.target, nil
	}
	if c.tstate.Load() == lazyDone {
		return c.tval, c.terr
	}
	if c.tstate.CompareAndSwap(lazyNew, lazyRunning) {
		c.terr = scopes.Call("Target", func() { c.tval = c.targetFunc() })
		c.tstate.Store(lazyDone)
		c.report(c.terr)
		return c.tval, c.terr
	}
	if c.tstate.Load() == lazyDone {
		return c.tval, c.terr
	}
	if !c.tstalled.Load() {
		if scopes.AwaitResolved(func() bool { return c.tstate.Load() == lazyDone }) {
			return c.tval, c.terr
		}
		c.tstalled.Store(true) // see scopes.Env: one wait per request, not one per lookup
	}
	return nil, fmt.Errorf("%w: the evaluation context (MiddlewareOptions.Target or Options.TargetFunc)", scopes.ErrInProgress)
}

const (
	lazyNew int32 = iota
	lazyRunning
	lazyDone
)

// GetFlag returns the flag's value, or "" when it is unset.
func (c *Controller) GetFlag(name string) string {
	if s := c.snap.Load(); s != nil {
		if f := s.flags[name]; f != nil {
			if v := c.memo(f); v >= memoRule {
				return f.rules[v-memoRule].text()
			} else if v != 0 {
				return ""
			}
		}
	}
	v, _ := c.lookupSlow(name)
	return v
}

// Lookup returns the flag's value text and whether any rule matched. A
// flag whose evaluation failed (reason ERROR) is unset.
func (c *Controller) Lookup(name string) (string, bool) {
	if s := c.snap.Load(); s != nil {
		if f := s.flags[name]; f != nil {
			if v := c.memo(f); v != 0 {
				if v >= memoRule {
					return f.rules[v-memoRule].text(), true
				}
				return "", false
			}
		}
	}
	return c.lookupSlow(name)
}

// lookupSlow is Lookup of a flag not yet memoised, apart so that the
// memoised path stays small.
func (c *Controller) lookupSlow(name string) (string, bool) {
	_, o := c.slow(name)
	if o.idx >= 0 && !o.fail {
		return o.rule.text(), true
	}
	return "", false
}

// Typed returns a declared flag's typed value: the matched rule's, or the
// code default when no rule matched or the rule's value is bad. ok is false
// for undeclared flags. A memoised lookup takes no lock and allocates
// nothing (but for json values, which are copied: see Result.Typed).
func (c *Controller) Typed(name string) (v any, ok bool) {
	f, m := c.find(name)
	if f == nil || f.def == nil {
		return nil, false
	}
	return f.typedOf(f.winner(m)), true
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
		if m := c.memo(rc.f); m != 0 {
			return rc.f.typedOf(rc.f.winner(m)), true
		}
	}
	f, m := c.find(ref.name)
	if f == nil {
		return nil, false
	}
	if s := c.snap.Load(); s != nil && s.flags[ref.name] == f {
		ref.cache.Store(&refCache{snap: s, f: f})
	}
	if f.def == nil {
		return nil, false
	}
	return f.typedOf(f.winner(m)), true
}

// Evaluate returns the flag's answer with its details. Once the flag is
// memoised it takes no lock.
func (c *Controller) Evaluate(name string) Result {
	if s := c.snap.Load(); s != nil {
		if f := s.flags[name]; f != nil {
			if v := c.memo(f); v != 0 {
				return f.resultOf(c.outcomeOf(f, v))
			}
		}
	}
	f, o := c.slow(name)
	if f == nil {
		return unknownResult(name)
	}
	return f.resultOf(o)
}

// EvaluateCopy is Evaluate for a caller that may modify the typed value:
// its Typed is a copy when the value holds maps, slices or pointers (as
// Typed returns), so no other reader sees the change. A memoised lookup
// of a scalar value allocates nothing.
func (c *Controller) EvaluateCopy(name string) Result {
	if s := c.snap.Load(); s != nil {
		if f := s.flags[name]; f != nil {
			if v := c.memo(f); v != 0 {
				return f.ownResultOf(c.outcomeOf(f, v))
			}
		}
	}
	f, o := c.slow(name)
	if f == nil {
		return unknownResult(name)
	}
	return f.ownResultOf(o)
}

// outcomeOf rebuilds the outcome of f's memoised answer v.
func (c *Controller) outcomeOf(f *flagEntry, v int32) outcome {
	o := outcome{idx: -1, rule: f.winner(v)}
	if o.rule != nil {
		o.idx = int(v - memoRule)
	}
	if t := c.chunks[f.idx>>6].Load().errs.Load(); t != nil {
		if me := t[f.idx&63].Load(); me != nil {
			o.err = me.err
			if v == memoFail {
				o.idx, o.fail, o.rule = me.fail, true, f.rule(me.fail)
			}
		}
	}
	return o
}

// unknownResult is the answer for a flag the snapshot does not know: no
// rule, no declaration; an invalid name says so in Err.
func unknownResult(name string) Result {
	return Result{Flag: name, Reason: ReasonDefault, Err: rules.ValidFlag(name)}
}

// find returns the flag's entry (nil if the snapshot does not know it) and
// its answer as memoised (see memoChunk).
func (c *Controller) find(name string) (*flagEntry, int32) {
	if s := c.snap.Load(); s != nil {
		if f := s.flags[name]; f != nil {
			if v := c.memo(f); v != 0 {
				return f, v
			}
		}
	}
	f, o := c.slow(name)
	return f, o.memo()
}

// memo returns f's memoised answer, 0 if none. f must belong to the
// controller's snapshot.
func (c *Controller) memo(f *flagEntry) int32 {
	if ch := c.chunks[f.idx>>6].Load(); ch != nil {
		return ch.v[f.idx&63].Load()
	}
	return 0
}

// slow evaluates a flag not yet memoised: it walks the flag's rules in
// descending priority and the first rule whose scope is active and whose
// condition holds wins. It holds no lock while scopes and conditions are
// evaluated. The answer is memoised unless it depended on a value still
// being resolved (scopes.ErrInProgress).
func (c *Controller) slow(name string) (*flagEntry, outcome) {
	s, pinned := c.pin()
	f := s.flags[name]
	if f == nil {
		c.noteUnknown(name)
		return nil, outcome{idx: -1}
	}
	if !pinned {
		o := s.eval(f, &c.sh.set, c, c.observer())
		c.report(o.err)
		return f, o
	}
	slot := &c.chunks[f.idx>>6]
	ch := slot.Load()
	if ch == nil {
		slot.CompareAndSwap(nil, new(memoChunk))
		ch = slot.Load()
	}
	if v := ch.v[f.idx&63].Load(); v != 0 { // another goroutine won
		return f, c.outcomeOf(f, v)
	}
	if c.onFirstUse != nil {
		c.onFirstUse(name)
	}
	o := s.eval(f, &c.sh.set, c, c.observer())
	c.report(o.err)
	if o.transient {
		return f, o
	}
	if o.err != nil {
		t := ch.errs.Load()
		if t == nil {
			ch.errs.CompareAndSwap(nil, new([64]atomic.Pointer[memoErr]))
			t = ch.errs.Load()
		}
		t[f.idx&63].CompareAndSwap(nil, &memoErr{err: o.err, fail: o.idx})
	}
	if !ch.v[f.idx&63].CompareAndSwap(0, o.memo()) {
		return f, c.outcomeOf(f, ch.v[f.idx&63].Load())
	}
	return f, o
}

// observer is how the controller's evaluations are observed: counted
// unless it is a probe, traced when its context's span is recording (looked
// up once).
func (c *Controller) observer() observer {
	if c.spanState.Load() != lazyDone {
		sp := recordingSpan(c.ctx)
		if c.spanState.CompareAndSwap(lazyNew, lazyRunning) {
			c.span = sp
			c.spanState.Store(lazyDone)
		}
		return observer{count: !c.probe, span: sp}
	}
	return observer{count: !c.probe, span: c.span}
}

// noteUnknown records a looked-up flag the snapshot does not know: valid
// names only, at most MaxUnknownPerRequest of them.
func (c *Controller) noteUnknown(name string) {
	if rules.ValidFlag(name) != nil {
		return
	}
	c.sh.mu.Lock()
	switch {
	case slices.Contains(c.sh.unknown, name):
		c.sh.mu.Unlock()
		return
	case len(c.sh.unknown) >= MaxUnknownPerRequest:
		c.sh.dropped++
		c.sh.mu.Unlock()
		return
	}
	c.sh.unknown = append(c.sh.unknown, name)
	c.sh.mu.Unlock()
	if c.onFirstUse != nil {
		c.onFirstUse(name)
	}
}

// pin returns the controller's snapshot, loading it on first use, and
// whether it is pinned. The source is asked under no lock (the SQL source
// checks scopes); a snapshot that depended on a scope still being checked
// serves only the lookup that asked for it.
func (c *Controller) pin() (*Snapshot, bool) {
	if s := c.snap.Load(); s != nil {
		return s, true
	}
	var s *Snapshot
	var err error
	if c.src != nil {
		s, err = c.src.Snapshot(c.ctx, &c.sh.set)
	}
	if s == nil {
		s = emptySnapshot
	}
	if errors.Is(err, scopes.ErrInProgress) {
		return s, false
	}
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	if cur := c.snap.Load(); cur != nil {
		return cur, true
	}
	c.sh.err = err
	c.chunks = make([]atomic.Pointer[memoChunk], (s.numFlags()+63)/64)
	c.snap.Store(s)
	return s, true
}

// Snapshot returns the snapshot this controller evaluates against, loading
// it if no lookup has yet.
func (c *Controller) Snapshot() *Snapshot {
	s, _ := c.pin()
	return s
}

// report logs a panic recovered from application code, once per site.
func (c *Controller) report(err error) {
	if err != nil {
		c.reportPanic(err)
	}
}

func (c *Controller) reportPanic(err error) {
	var pe *scopes.PanicError
	if !errors.As(err, &pe) {
		return
	}
	log := c.log
	if log == nil {
		log = slog.Default()
	}
	if _, seen := reportedSites.LoadOrStore(siteKey{log, pe.Site}, struct{}{}); seen {
		return
	}
	log.Error("flag evaluation: application callback panicked; flags that need it evaluate to ERROR (logged once per site)",
		"site", pe.Site, "panic", fmt.Sprint(pe.Value))
}

// reportedSites are the callback sites whose panics have been logged, per
// logger.
var reportedSites sync.Map

type siteKey struct {
	log  *slog.Logger
	site string
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
		if c.memo(f) != 0 {
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

// UnknownDropped returns how many looked-up flags unknown to the snapshot
// were not recorded because MaxUnknownPerRequest were already.
func (c *Controller) UnknownDropped() int {
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	return c.sh.dropped
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
	if f, v := c.find(name); f.winner(v) != nil {
		return f.winner(v).Scope, true
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
