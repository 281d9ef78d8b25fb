package controller

import (
	"cmp"
	"errors"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// Snapshot is an immutable, compiled set of rules: scopes compiled, values
// of declared flags parsed and conditions compiled, each once. It is safe
// for concurrent use.
type Snapshot struct {
	revision int64
	built    time.Time
	flags    map[string]*flagEntry
	names    []string // flag names, sorted
	all      []rule   // every rule, normalised order; flagEntry.rules slice it
	scopes   []*scopes.Scope
	problems []*Problem
	stored   []rules.Definition // the source's declarations (Live sets it); read-only
	exp      Exposer            // BuildOptions.Exposures
}

type flagEntry struct {
	idx   int32
	name  string
	rules []rule // descending priority

	def         *rules.Definition // nil: undeclared, values are text
	fd          *flagDef          // def's codec and converter; nil when undeclared
	dflt        rules.Value       // the code default, parsed
	dfltTyped   any               // the code default converted for the application
	dfltFresh   func() any        // as ruleExt.fresh, for the code default
	conditional bool              // some rule has a condition
	bad         bool              // some rule's value or condition is a problem
	cost        int64             // worst-case cost of an evaluation (rules.FlagCost)
	useDefault  *usageCounter     // counts DEFAULT answers; nil: counting off
	useError    *usageCounter     // counts ERROR answers
}

type rule struct {
	x *ruleExt // nil for an unconditional rule of an undeclared flag
	rules.Rule
	scope *scopes.Scope
	use   *usageCounter // counts the rule's wins; nil: counting off
}

// ruleExt holds what only conditional rules and declared flags need, so
// the common rule stays small (less for the garbage collector to scan).
type ruleExt struct {
	cond    *rules.Condition // nil: unconditional (or condErr)
	condErr error            // the stored condition does not compile: never matches
	val     rules.Value      // parsed value
	typed   any              // val converted for the application
	fresh   func() any       // non-nil when typed holds maps, slices or pointers: a new copy
	valErr  error            // the stored value fails the flag's type
}

// text is the value's text (a variant resolved).
func (r *rule) text() string {
	if r.x != nil && r.x.valErr == nil {
		return r.x.val.Text
	}
	return r.Value
}

func (r *rule) valErr() error {
	if r.x == nil {
		return nil
	}
	return r.x.valErr
}

// Converter turns a parsed value into the Go value an application reads,
// such as a struct for a json flag.
type Converter func(rules.Value) (any, error)

// BuildOptions tell Build about flags beyond their rules.
type BuildOptions struct {
	// Known names flags to include even when they have no rules
	// (documented flags), so their lookups are memoised lock-free too.
	Known []string
	// Defs declare typed flags. A later declaration of a name replaces an
	// earlier one, so code declarations can follow stored ones.
	Defs []rules.Definition
	// Convert returns the converter for a declared flag, or nil to keep
	// the parsed value (bool, string, int64, float64 or decoded JSON).
	Convert func(flag string) Converter
	// Codec is how declared flags' values are parsed: their size limit
	// and the cache of schema checks. Live gives its builds one cache
	// (unless set here), so a value is checked against its schema once
	// across its snapshots; a Build without one checks each distinct
	// value once within the build.
	Codec rules.CodecOptions
	// Usage, if set, counts the snapshot's evaluations (see Usage).
	Usage *Usage
	// Exposures, if set, is told of every counted evaluation a rollout
	// rule (percent or bucket) decided.
	Exposures Exposer
}

// Build compiles rs into a Snapshot for revision. Scope strings are compiled
// with reg, once each. A stored value that fails its flag's type or a
// condition that does not compile does not stop the build: the rule
// evaluates to an error (see Result) and the problem is listed by Problems.
// Build does not modify rs.
func Build(rs []rules.Rule, reg *scopes.Registry, revision int64, opts BuildOptions) *Snapshot {
	return build(rs, reg, revision, opts, nil)
}

// build is Build, reusing from prev (nil: none) the parsed values and
// compiled conditions of rules that did not change: a rule whose flag,
// scope, priority, value and condition are those of one of prev's rules,
// and whose flag has an equal declaration (or none in both), shares that
// rule's ruleExt, which is immutable. prev must have been built by build
// with the same opts.Convert (Live's, fixed for its life; it is assumed to
// give equivalent converters for a name each time). Scopes are compiled
// afresh, since reg may have gained handlers. Everything per snapshot (the
// rules slice, flag entries and their idx) is new, so a reused part is
// never reached through a memo of prev's.
func build(rs []rules.Rule, reg *scopes.Registry, revision int64, opts BuildOptions, prev *Snapshot) *Snapshot {
	s := &Snapshot{revision: revision, built: time.Now(), all: make([]rule, len(rs)), exp: opts.Exposures}

	defs := make(map[string]*flagDef, len(opts.Defs))
	for _, d := range opts.Defs {
		if prev != nil { // an unchanged declaration: its codec and converter
			if oe := prev.flags[d.Name]; oe != nil && oe.fd != nil && oe.fd.def.Equal(d) {
				defs[d.Name] = oe.fd
				continue
			}
		}
		fd := &flagDef{def: d}
		if opts.Codec.Cache == nil { // a value repeated in many rules is checked once
			opts.Codec.Cache = rules.NewValidationCache(0, 0)
		}
		codec, err := d.CodecWith(opts.Codec)
		if err != nil {
			s.problems = append(s.problems, &Problem{Flag: d.Name, Part: PartDeclaration, Text: declText(d), Err: err})
			continue // an invalid declaration is ignored: the flag is text
		}
		fd.codec = codec
		if opts.Convert != nil {
			fd.convert = opts.Convert(d.Name)
		}
		defs[d.Name] = fd
	}

	at := func(i int) *rules.Rule { return &rs[i] }
	order, runs := normalOrder(rs)
	if order != nil {
		at = func(i int) *rules.Rule { return &rs[order[i]] }
	}

	compiled := make(map[string]*scopes.Scope)
	conds := make(map[condKey]*rules.Condition)
	extra := len(opts.Known) + len(defs)
	// A flag has at least one run: entries is never reallocated, so
	// pointers to its elements can be taken as it grows.
	entries := make([]flagEntry, 0, runs+extra)
	s.flags = make(map[string]*flagEntry, runs+extra)
	for i := 0; i < len(rs); {
		flag := at(i).Flag
		j := i + 1
		for j < len(rs) && at(j).Flag == flag {
			j++
		}
		fd := defs[flag]
		var old []rule // prev's rules of flag, when their values mean the same
		oldBad := false
		if prev != nil {
			if oe := prev.flags[flag]; oe != nil && sameDef(oe.def, fd) {
				old, oldBad = oe.rules, oe.bad
			}
		}
		e := flagEntry{name: flag, rules: s.all[i:j:j]}
		o := 0
		for k := i; k < j; k++ {
			r := *at(k)
			r.Line = 0
			sc := compiled[r.Scope]
			if sc == nil {
				sc = reg.Compile(r.Scope)
				compiled[r.Scope] = sc
				s.scopes = append(s.scopes, sc)
			}
			cr := rule{Rule: r, scope: sc}
			e.conditional = e.conditional || r.Condition != ""
			// Both are in descending priority: walk prev's alongside.
			for o < len(old) && old[o].Priority > r.Priority {
				o++
			}
			if o < len(old) && old[o].Rule == r {
				cr.x = old[o].x
				o++
				if !oldBad { // none of prev's rules of flag had a problem
					s.all[k] = cr
					continue
				}
			} else if fd != nil || r.Condition != "" {
				salt := flag
				if fd != nil {
					salt = fd.def.RolloutSalt()
				}
				cr.x = compileExt(r, fd, salt, conds)
			}
			if x := cr.x; x != nil {
				if x.valErr != nil {
					e.bad = true
					s.problems = append(s.problems, &Problem{Flag: r.Flag, Scope: r.Scope, Priority: r.Priority, Part: PartValue, Text: r.Value, Err: x.valErr})
				}
				if x.condErr != nil {
					e.bad = true
					s.problems = append(s.problems, &Problem{Flag: r.Flag, Scope: r.Scope, Priority: r.Priority, Part: PartCondition, Text: r.Condition, Err: x.condErr})
				}
			}
			s.all[k] = cr
		}
		entries = append(entries, e)
		s.flags[flag] = &entries[len(entries)-1]
		i = j
	}
	slices.SortFunc(s.scopes, func(a, b *scopes.Scope) int { return strings.Compare(a.Name, b.Name) })

	addName := func(name string) {
		if s.flags[name] == nil {
			entries = append(entries, flagEntry{name: name})
			s.flags[name] = &entries[len(entries)-1]
		}
	}
	for _, name := range opts.Known {
		addName(name)
	}
	for _, d := range opts.Defs {
		if defs[d.Name] != nil {
			addName(d.Name)
		}
	}
	s.names = make([]string, len(entries))
	for i := range entries {
		e := &entries[i]
		if fd := defs[e.name]; fd != nil {
			e.def, e.fd = &fd.def, fd
			var oe *flagEntry
			if prev != nil {
				oe = prev.flags[e.name]
			}
			if oe != nil && oe.fd == fd && oe.dfltTyped != nil { // the default parsed alike before
				e.dflt, e.dfltTyped, e.dfltFresh = oe.dflt, oe.dfltTyped, oe.dfltFresh
			} else {
				e.dflt = fd.codec.Default()
				var err error
				if _, e.dfltTyped, e.dfltFresh, err = fd.parse(e.dflt.Text); err != nil {
					e.dfltTyped, e.dfltFresh = nil, nil
					s.problems = append(s.problems, &Problem{Flag: e.name, Part: PartDefault, Text: e.dflt.Text, Err: err})
				}
			}
		}
		e.idx = int32(i)
		s.names[i] = e.name
		e.cost = rules.CostFlag
		for k := range e.rules {
			var c *rules.Condition
			if x := e.rules[k].x; x != nil {
				c = x.cond
			}
			e.cost += rules.RuleCost(c)
		}
		if u := opts.Usage; u != nil {
			d := e.result(nil, nil)
			e.useDefault = u.counter(e.name, d.Reason, d.Variant, d.Value)
			d = e.resultOf(outcome{idx: -1, fail: true})
			e.useError = u.counter(e.name, d.Reason, d.Variant, d.Value)
			for k := range e.rules {
				r := &e.rules[k]
				w := e.result(r, nil)
				r.use = u.counter(e.name, w.Reason, w.Variant, w.Value)
			}
		}
	}
	slices.Sort(s.names)
	return s
}

// normalOrder returns the indexes of rs in normalised order (rules.Compare,
// stable), or nil when rs is in that order already, as rules from a store
// are, and the number of runs of one flag's rules in rs (at least the
// number of flags). A flag's rules usually come together, so it sorts the
// runs by name, then each flag's rules by priority, rather than every rule.
func normalOrder(rs []rules.Rule) (order []int32, nruns int) {
	type run struct{ lo, hi int32 }
	var runs []run
	sorted := true
	for i := 0; i < len(rs); {
		j := i + 1
		for j < len(rs) && rs[j].Flag == rs[i].Flag {
			sorted = sorted && rs[j].Priority <= rs[j-1].Priority
			j++
		}
		if len(runs) > 0 && rs[runs[len(runs)-1].lo].Flag >= rs[i].Flag {
			sorted = false
		}
		runs = append(runs, run{int32(i), int32(j)})
		i = j
	}
	if sorted {
		return nil, len(runs)
	}
	// Stable: the runs of a flag, and so its rules, keep their input order.
	slices.SortStableFunc(runs, func(a, b run) int { return strings.Compare(rs[a.lo].Flag, rs[b.lo].Flag) })
	order = make([]int32, 0, len(rs))
	for _, r := range runs {
		for k := r.lo; k < r.hi; k++ {
			order = append(order, k)
		}
	}
	byPriority := func(a, b int32) int { return cmp.Compare(rs[b].Priority, rs[a].Priority) }
	for i := 0; i < len(order); {
		j := i + 1
		for j < len(order) && rs[order[j]].Flag == rs[order[i]].Flag {
			j++
		}
		if !slices.IsSortedFunc(order[i:j], byPriority) {
			slices.SortStableFunc(order[i:j], byPriority)
		}
		i = j
	}
	return order, len(runs)
}

type condKey struct{ text, salt string }

// compileExt parses r's value for fd (nil: undeclared) and compiles its
// condition with salt, sharing compiled conditions through conds.
func compileExt(r rules.Rule, fd *flagDef, salt string, conds map[condKey]*rules.Condition) *ruleExt {
	x := &ruleExt{val: rules.Value{Text: r.Value}}
	if fd != nil {
		x.val, x.typed, x.fresh, x.valErr = fd.parse(r.Value)
		if x.valErr != nil {
			x.val = rules.Value{Text: r.Value}
		}
	}
	if r.Condition != "" {
		k := condKey{r.Condition, salt}
		if c, ok := conds[k]; ok {
			x.cond = c
		} else if c, err := rules.CompileCondition(r.Condition, salt); err != nil {
			x.condErr = err
		} else {
			conds[k], x.cond = c, c
		}
	}
	return x
}

// sameDef reports whether a flag declared by old (nil: undeclared) in a
// previous snapshot is declared by fd (nil: undeclared) alike, so that its
// rules' values parse the same.
func sameDef(old *rules.Definition, fd *flagDef) bool {
	if old == nil || fd == nil {
		return old == nil && fd == nil
	}
	return old.Equal(fd.def)
}

type flagDef struct {
	def     rules.Definition
	codec   *rules.Codec
	convert Converter
}

// parse parses a stored value and converts it for the application. When
// the result holds maps, slices or pointers, fresh makes a new copy of it
// for each reader, so that no request sees another's changes.
func (fd *flagDef) parse(text string) (v rules.Value, typed any, fresh func() any, err error) {
	v, err = fd.codec.Parse(text)
	if err != nil {
		return v, nil, nil, err
	}
	if fd.convert == nil {
		typed = v.Any
		if fd.def.Type == rules.JSON && mutable(reflect.TypeOf(typed)) {
			fresh = func() any { return cloneJSON(v.Any) }
		}
		return v, typed, fresh, nil
	}
	typed, err = fd.safeConvert(v)
	if err != nil {
		return v, nil, nil, err
	}
	if mutable(reflect.TypeOf(typed)) {
		fresh = func() any {
			t, err := fd.safeConvert(v)
			if err != nil { // it converted once; it cannot fail now
				return nil
			}
			return t
		}
	}
	return v, typed, fresh, nil
}

// safeConvert runs the application's converter (which may run its
// UnmarshalJSON), turning a panic into an error.
func (fd *flagDef) safeConvert(v rules.Value) (typed any, err error) {
	if perr := scopes.Call("value converter", func() { typed, err = fd.convert(v) }); perr != nil {
		return nil, perr
	}
	return typed, err
}

// mutable reports whether values of t can share state when copied: maps,
// slices, pointers, interfaces, channels and functions, directly or in
// fields and elements.
func mutable(t reflect.Type) bool {
	return mutableSeen(t, map[reflect.Type]bool{})
}

func mutableSeen(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == nil {
		return false
	}
	if m, ok := seen[t]; ok {
		return m
	}
	seen[t] = true // recursive types are reached through pointers: mutable
	m := false
	switch t.Kind() {
	case reflect.Map, reflect.Slice, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		m = true
	case reflect.Array:
		m = mutableSeen(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if mutableSeen(t.Field(i).Type, seen) {
				m = true
				break
			}
		}
	}
	seen[t] = m
	return m
}

// cloneJSON deep-copies a document decoded by encoding/json.
func cloneJSON(v any) any {
	switch a := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(a))
		for k, e := range a {
			m[k] = cloneJSON(e)
		}
		return m
	case []any:
		s := make([]any, len(a))
		for i, e := range a {
			s[i] = cloneJSON(e)
		}
		return s
	}
	return v // string, bool, json.Number, float64, nil: immutable
}

// Revision is the revision of the rules the snapshot was built from; -1
// when it was not built from a revisioned source.
func (s *Snapshot) Revision() int64 { return s.revision }

// Built is when the snapshot was compiled.
func (s *Snapshot) Built() time.Time { return s.built }

// Len is the number of rules.
func (s *Snapshot) Len() int { return len(s.all) }

// Problems lists stored values that fail their flag's type, conditions
// that do not compile and invalid declarations met while building, each
// a *Problem.
func (s *Snapshot) Problems() []error {
	out := make([]error, len(s.problems))
	for i, p := range s.problems {
		out[i] = p
	}
	return out
}

// Rules returns a copy of every rule in normalised order.
func (s *Snapshot) Rules() []rules.Rule {
	out := make([]rules.Rule, len(s.all))
	for i, r := range s.all {
		out[i] = r.Rule
	}
	return out
}

// Flags returns the names of the flags that have rules, sorted.
func (s *Snapshot) Flags() []string {
	out := make([]string, 0, len(s.names))
	for _, n := range s.names {
		if len(s.flags[n].rules) > 0 {
			out = append(out, n)
		}
	}
	return out
}

// Known reports whether name has rules or a declaration in the snapshot
// (a name only documented in code is not known).
func (s *Snapshot) Known(name string) bool {
	f := s.flags[name]
	return f != nil && (len(f.rules) > 0 || f.def != nil)
}

// KnownFlags returns, sorted, the names of the flags that have rules or a
// declaration.
func (s *Snapshot) KnownFlags() []string {
	out := make([]string, 0, len(s.names))
	for _, n := range s.names {
		if f := s.flags[n]; len(f.rules) > 0 || f.def != nil {
			out = append(out, n)
		}
	}
	return out
}

// Definition returns the declaration the snapshot evaluates name with.
func (s *Snapshot) Definition(name string) (rules.Definition, bool) {
	if f := s.flags[name]; f != nil && f.def != nil {
		return *f.def, true
	}
	return rules.Definition{}, false
}

// Definitions returns every declaration, sorted by name.
func (s *Snapshot) Definitions() []rules.Definition {
	var out []rules.Definition
	for _, n := range s.names {
		if f := s.flags[n]; f.def != nil {
			out = append(out, *f.def)
		}
	}
	return out
}

// Config returns the configuration the snapshot was built from: its
// revision, every rule (normalised order) and the declarations its source
// stored — not those made in code (Definitions has both). A snapshot
// built by Build rather than by a Live has no stored declarations.
func (s *Snapshot) Config() *rules.Config {
	return &rules.Config{Revision: s.revision, Rules: s.Rules(), Flags: slices.Clone(s.stored)}
}

// Cost returns the worst-case cost of evaluating flag name, in the units
// of rules.FlagCost: every rule walked and its condition at its worst.
// An unknown flag costs rules.CostFlag. Bulk evaluations charge it
// against a budget.
func (s *Snapshot) Cost(name string) int64 {
	if f := s.flags[name]; f != nil {
		return f.cost
	}
	return rules.CostFlag
}

// Scopes returns the distinct scopes the rules mention, compiled, sorted by
// name.
func (s *Snapshot) Scopes() []*scopes.Scope { return slices.Clone(s.scopes) }

func (s *Snapshot) numFlags() int { return len(s.names) }

// Evaluate evaluates one flag without memoising: the flag's rules in
// descending priority, the first whose scope is active in set and whose
// condition holds for t gives the value. set is safe for concurrent use.
func (s *Snapshot) Evaluate(name string, set *scopes.Set, t *rules.Target) Result {
	f := s.flags[name]
	if f == nil {
		return unknownResult(name)
	}
	return f.resultOf(s.eval(f, set, fixedTarget{t}, observer{count: true}))
}

// targeter gives resolve the evaluation context when a condition first
// needs it.
type targeter interface {
	evalTarget() (*rules.Target, error)
}

type fixedTarget struct{ t *rules.Target }

func (f fixedTarget) evalTarget() (*rules.Target, error) { return f.t, nil }

// rule returns f's rule i, or nil for -1 (no rule matched).
func (f *flagEntry) rule(i int) *rule {
	if i < 0 {
		return nil
	}
	return &f.rules[i]
}

// typedOf returns the typed value for winning rule r (nil: none): the
// code default when none matched or r's value is bad. Values that hold
// maps, slices or pointers are copied.
func (f *flagEntry) typedOf(r *rule) any {
	if r == nil || r.valErr() != nil {
		if f.dfltFresh != nil {
			return f.dfltFresh()
		}
		return f.dfltTyped
	}
	if r.x.fresh != nil {
		return r.x.fresh()
	}
	return r.x.typed
}

// sharedOf is typedOf without the copy: the snapshot's own typed value
// for winning rule r (nil: none), for a Result, whose readers must not
// modify it.
func (f *flagEntry) sharedOf(r *rule) any {
	if r == nil || r.valErr() != nil {
		return f.dfltTyped
	}
	return r.x.typed
}

// outcome is what walking a flag's rules found.
type outcome struct {
	idx  int   // the winning rule, or the failing one; -1: none matched
	rule *rule // rule idx; nil for -1
	// fail: the answer is ERROR (the code default) because rule idx could
	// not be decided: its scope's predicate or a callback it needed
	// panicked, its stored condition is refused, or the evaluation
	// context could not be had.
	fail bool
	err  error
	// transient: the answer depended on a value still being resolved
	// (scopes.ErrInProgress) and must not be memoised.
	transient bool
}

// memo is how the outcome is memoised: see memoChunk.
func (o outcome) memo() int32 {
	switch {
	case o.fail:
		return memoFail
	case o.rule == nil:
		return memoUnset
	}
	return memoRule + int32(o.idx)
}

// resolve walks f's rules in descending priority. The first rule whose
// scope is active and whose condition holds wins; a rule that cannot be
// decided ends the walk with an error answer. err is also the first
// run-time condition error met (such a rule does not match).
func (f *flagEntry) resolve(set *scopes.Set, tg targeter) outcome {
	var first error
	for i := range f.rules {
		r := &f.rules[i]
		active, err := set.Check(r.scope)
		if err != nil {
			return outcome{idx: i, rule: r, fail: true, err: err, transient: errors.Is(err, scopes.ErrInProgress)}
		}
		if !active {
			continue
		}
		if r.Condition == "" {
			return outcome{idx: i, rule: r, err: first}
		}
		if r.x.cond == nil {
			return outcome{idx: i, rule: r, fail: true, err: r.x.condErr}
		}
		t, err := tg.evalTarget()
		if err != nil {
			return outcome{idx: i, rule: r, fail: true, err: err, transient: errors.Is(err, scopes.ErrInProgress)}
		}
		ok, err := r.x.cond.Match(t)
		if err != nil && first == nil {
			first = err
		}
		if ok {
			return outcome{idx: i, rule: r, err: first}
		}
	}
	return outcome{idx: -1, err: first}
}

// resultOf describes outcome o.
func (f *flagEntry) resultOf(o outcome) Result {
	if !o.fail {
		return f.result(o.rule, o.err)
	}
	res := Result{Flag: f.name, Err: o.err, Declared: f.def != nil, Reason: ReasonError, Typed: f.sharedOf(nil)}
	if f.def != nil {
		res.Value = f.dflt.Text
	}
	if r := o.rule; r != nil {
		res.Scope, res.Priority, res.Condition = r.Scope, r.Priority, r.Condition
	}
	return res
}

// ownResultOf is resultOf with Typed copied (typedOf), for a caller
// that may modify it.
func (f *flagEntry) ownResultOf(o outcome) Result {
	res := f.resultOf(o)
	if f.def != nil {
		if o.fail {
			res.Typed = f.typedOf(nil)
		} else {
			res.Typed = f.typedOf(o.rule)
		}
	}
	return res
}

// result describes winning rule r (nil: none) and the error met.
func (f *flagEntry) result(r *rule, err error) Result {
	res := Result{Flag: f.name, Err: err, Declared: f.def != nil}
	if r == nil {
		res.Reason, res.Typed = ReasonDefault, f.sharedOf(nil)
		if f.def != nil {
			// A default that names a variant is that variant (the
			// control group of an A/B test).
			res.Value, res.Variant = f.dflt.Text, f.dflt.Variant
		}
		return res
	}
	res.Set, res.Scope, res.Priority, res.Condition = true, r.Scope, r.Priority, r.Condition
	res.Value = r.Value
	var cond *rules.Condition
	if r.x != nil {
		res.Value, res.Variant, res.Typed, cond = r.x.val.Text, r.x.val.Variant, f.sharedOf(r), r.x.cond
	}
	switch {
	case r.valErr() != nil:
		res.Reason, res.Err, res.Variant = ReasonError, r.x.valErr, ""
		res.Value, res.Typed = f.dflt.Text, f.sharedOf(nil)
	case cond != nil && cond.Rollout():
		res.Reason = ReasonSplit
	case r.Condition != "" || r.Scope != "default":
		res.Reason = ReasonTargetingMatch
	default:
		res.Reason = ReasonStatic
	}
	return res
}

var emptySnapshot = Build(nil, scopes.NewRegistry(), -1, BuildOptions{})
