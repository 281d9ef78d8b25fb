package scopes

import "slices"

// Check is one scope a Set looked at, and what it found.
type Check struct {
	Scope   string
	Active  bool
	Claimed bool
}

// Set evaluates scopes for one request or job lazily: each scope at most
// once, only when asked, with the answer memoised. The zero Set is empty;
// call Reset before use. A Set is not safe for concurrent use.
type Set struct {
	env       Env
	inline    [8]Check
	checks    []Check
	index     map[string]int // built once checks outgrow inline search
	unclaimed []string
}

// NewSet returns a Set over env.
func NewSet(env Env) *Set {
	s := &Set{}
	s.Reset(env)
	return s
}

// Reset makes s a fresh set over env, forgetting every answer.
func (s *Set) Reset(env Env) {
	*s = Set{env: env}
	s.checks = s.inline[:0]
}

// Env returns the set's environment.
func (s *Set) Env() *Env { return &s.env }

// Active reports whether sc is active, asking its predicate only the first
// time. A scope named in Env.Fixed is active outright; an unclaimed or
// rejected scope is otherwise inactive, and an unclaimed one is recorded.
func (s *Set) Active(sc *Scope) bool {
	if i, ok := s.find(sc.Name); ok {
		return s.checks[i].Active
	}
	c := Check{Scope: sc.Name, Claimed: sc.Handler != nil}
	switch {
	case slices.Contains(s.env.Fixed, sc.Name):
		c.Active = true
	case sc.pred != nil:
		c.Active = sc.pred(&s.env)
	case sc.Handler == nil:
		s.unclaimed = append(s.unclaimed, sc.Name)
	}
	if s.checks == nil {
		s.checks = s.inline[:0]
	}
	s.checks = append(s.checks, c)
	if s.index != nil {
		s.index[sc.Name] = len(s.checks) - 1
	}
	return c.Active
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
func (s *Set) Checked() []Check { return slices.Clone(s.checks) }

// Unclaimed returns the scopes asked so far that no handler claims (and that
// were not fixed), in order.
func (s *Set) Unclaimed() []string { return slices.Clone(s.unclaimed) }
