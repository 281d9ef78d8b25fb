package scopes

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Check is one scope a Set looked at, and what it found.
type Check struct {
	Scope   string
	Active  bool
	Claimed bool
	// Err is why the scope could not be decided: its predicate (or the
	// user or page function it needed) panicked. The scope then counts as
	// inactive and flags that reach it evaluate to an error.
	Err error
}

// Set evaluates scopes for one request or job lazily: each scope at most
// once, only when asked, with the answer memoised. The zero Set is empty;
// call Reset before use. A Set is safe for concurrent use; predicates run
// outside its lock, so a predicate may itself read flags of the same
// request (a scope it needs that is still being checked then reports
// ErrInProgress after InProgressWait instead of deadlocking; a check
// another goroutine is making is waited for).
type Set struct {
	mu        sync.Mutex
	env       Env
	inline    [8]check
	checks    []check
	errs      []scopeErr     // the checks that failed, rarely any
	index     map[string]int // built once checks outgrow inline search
	unclaimed []string
	running   []string // scopes whose predicate is running
	stalled   []string // running scopes a wait timed out on: not waited for again
	runInline [2]string
}

// NewSet returns a Set over env.
func NewSet(env Env) *Set {
	s := &Set{}
	s.Reset(env)
	return s
}

// Reset makes s a fresh set over env, forgetting every answer. It must not
// run concurrently with other methods.
func (s *Set) Reset(env Env) {
	s.env = env
	s.inline = [8]check{}
	s.checks = s.inline[:0]
	s.errs = nil
	s.index = nil
	s.unclaimed = nil
	s.running = s.runInline[:0]
	s.stalled = nil
}

// Env returns the set's environment.
func (s *Set) Env() *Env { return &s.env }

// Active reports whether sc is active; a scope that could not be decided
// (see Check) is inactive.
func (s *Set) Active(sc *Scope) bool {
	ok, _ := s.Check(sc)
	return ok
}

// Check reports whether sc is active, asking its predicate only the first
// time. A scope named in Env.Fixed is active outright; an unclaimed or
// rejected scope is otherwise inactive, and an unclaimed one is recorded.
// A predicate that panics makes the scope inactive with a *PanicError,
// memoised like any answer. While sc's predicate runs, other checks of sc
// report an error wrapping ErrInProgress, which is not memoised.
func (s *Set) Check(sc *Scope) (bool, error) {
	s.mu.Lock()
	if i, ok := s.find(sc.Name); ok {
		c := s.checks[i]
		var err error
		if c.failed {
			err = s.errOf(c.Scope)
		}
		s.mu.Unlock()
		return c.Active, err
	}
	c := check{Scope: sc.Name, Claimed: sc.Handler != nil}
	var err error
	switch {
	case slices.Contains(s.env.Fixed, sc.Name):
		c.Active = true
	case sc.pred != nil:
		if slices.Contains(s.running, sc.Name) {
			// Another goroutine of the request is checking it (wait for
			// its answer), or this is a predicate's own call chain (which
			// waits in vain, for InProgressWait, once: after a timeout
			// later checks do not wait while it still runs).
			stalled := slices.Contains(s.stalled, sc.Name)
			s.mu.Unlock()
			if !stalled && AwaitResolved(func() bool { return !s.isRunning(sc.Name) }) {
				return s.Check(sc)
			}
			s.mu.Lock()
			if slices.Contains(s.running, sc.Name) && !slices.Contains(s.stalled, sc.Name) {
				s.stalled = append(s.stalled, sc.Name)
			}
			s.mu.Unlock()
			return false, fmt.Errorf("%w: scope %s", ErrInProgress, sc.Name)
		}
		if s.running == nil {
			s.running = s.runInline[:0]
			s.stalled = nil
		}
		s.running = append(s.running, sc.Name)
		s.mu.Unlock()
		var active bool
		active, err = s.call(sc)
		s.mu.Lock()
		if i := slices.Index(s.running, sc.Name); i >= 0 {
			s.running = slices.Delete(s.running, i, i+1)
		}
		if i := slices.Index(s.stalled, sc.Name); i >= 0 {
			s.stalled = slices.Delete(s.stalled, i, i+1)
		}
		if errors.Is(err, ErrInProgress) {
			s.mu.Unlock()
			return false, err
		}
		c.Active = active && err == nil
		if err != nil {
			c.failed = true
			s.errs = append(s.errs, scopeErr{sc.Name, err})
		}
	case sc.Handler == nil:
		s.unclaimed = append(s.unclaimed, sc.Name)
	}
	s.record(c)
	s.mu.Unlock()
	return c.Active, err
}

// check is a Check as kept: its error, if failed, is in Set.errs.
type check struct {
	Scope   string
	Active  bool
	Claimed bool
	failed  bool
}

type scopeErr struct {
	scope string
	err   error
}

// errOf returns the error of a failed check. s.mu is held.
func (s *Set) errOf(scope string) error {
	for _, e := range s.errs {
		if e.scope == scope {
			return e.err
		}
	}
	return nil
}

// call runs sc's predicate, turning a panic into an error as Call does
// (without allocating when there is none).
func (s *Set) call(sc *Scope) (active bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			active = false
			if fl, ok := v.(failure); ok {
				err = fl.err
				return
			}
			err = &PanicError{Site: "scope " + sc.Name, Value: v}
		}
	}()
	return sc.pred(&s.env), nil
}

func (s *Set) isRunning(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.running, name)
}

// record appends c. s.mu is held.
func (s *Set) record(c check) {
	if s.checks == nil {
		s.checks = s.inline[:0]
	}
	s.checks = append(s.checks, c)
	if s.index != nil {
		s.index[c.Scope] = len(s.checks) - 1
	}
}

func (s *Set) find(name string) (int, bool) {
	if s.index != nil {
		i, ok := s.index[name]
		return i, ok
	}
	for i := range s.checks {
		if s.checks[i].Scope == name {
			return i, true
		}
	}
	if len(s.checks) >= 16 {
		s.index = make(map[string]int, 2*len(s.checks))
		for i, c := range s.checks {
			s.index[c.Scope] = i
		}
	}
	return 0, false
}

// Checked returns the scopes asked so far, in the order they were first
// asked, with their answers.
func (s *Set) Checked() []Check {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Check, len(s.checks))
	for i, c := range s.checks {
		out[i] = Check{Scope: c.Scope, Active: c.Active, Claimed: c.Claimed}
		if c.failed {
			out[i].Err = s.errOf(c.Scope)
		}
	}
	return out
}

// Unclaimed returns the scopes asked so far that no handler claims (and that
// were not fixed), in order.
func (s *Set) Unclaimed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unclaimed)
}
