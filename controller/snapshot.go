package controller

import (
	"slices"
	"strings"
	"time"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// Snapshot is an immutable, compiled set of rules. It is safe for
// concurrent use.
type Snapshot struct {
	revision int64
	built    time.Time
	flags    map[string]*flagEntry
	names    []string // flag names, sorted
	all      []rule   // every rule, normalised order; flagEntry.rules slice it
	scopes   []*scopes.Scope
}

type flagEntry struct {
	idx   int32
	name  string
	rules []rule // descending priority
}

type rule struct {
	rules.Rule
	scope *scopes.Scope
}

// Build compiles rs into a Snapshot for revision. Scope strings are compiled
// with reg, once each. extra names flags to include even when they have no
// rules (documented flags), so their lookups are memoised lock-free too.
// Build does not modify rs.
func Build(rs []rules.Rule, reg *scopes.Registry, revision int64, extra ...string) *Snapshot {
	s := &Snapshot{revision: revision, built: time.Now(), all: make([]rule, len(rs))}
	compiled := make(map[string]*scopes.Scope)
	for i, r := range rs {
		r.Line = 0
		sc := compiled[r.Scope]
		if sc == nil {
			sc = reg.Compile(r.Scope)
			compiled[r.Scope] = sc
			s.scopes = append(s.scopes, sc)
		}
		s.all[i] = rule{Rule: r, scope: sc}
	}
	slices.SortStableFunc(s.all, func(a, b rule) int { return rules.Compare(a.Rule, b.Rule) })
	slices.SortFunc(s.scopes, func(a, b *scopes.Scope) int { return strings.Compare(a.Name, b.Name) })

	s.flags = make(map[string]*flagEntry, len(rs)/2+len(extra))
	entries := make([]flagEntry, 0, len(rs)/2+len(extra))
	for i := 0; i < len(s.all); {
		j := i + 1
		for j < len(s.all) && s.all[j].Flag == s.all[i].Flag {
			j++
		}
		entries = append(entries, flagEntry{name: s.all[i].Flag, rules: s.all[i:j:j]})
		i = j
	}
	withRules := len(entries) // entries[:withRules] is sorted by name
	for _, name := range extra {
		if _, ok := slices.BinarySearchFunc(entries[:withRules], name, func(e flagEntry, n string) int { return strings.Compare(e.name, n) }); !ok {
			entries = append(entries, flagEntry{name: name})
		}
	}
	// entries may have been reallocated by append: take pointers only now.
	s.names = make([]string, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		if _, dup := s.flags[e.name]; dup {
			continue
		}
		e.idx = int32(len(s.names))
		s.flags[e.name] = e
		s.names = append(s.names, e.name)
	}
	slices.Sort(s.names)
	return s
}

// Revision is the revision of the rules the snapshot was built from; -1
// when it was not built from a revisioned source.
func (s *Snapshot) Revision() int64 { return s.revision }

// Built is when the snapshot was compiled.
func (s *Snapshot) Built() time.Time { return s.built }

// Len is the number of rules.
func (s *Snapshot) Len() int { return len(s.all) }

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

// Scopes returns the distinct scopes the rules mention, compiled, sorted by
// name.
func (s *Snapshot) Scopes() []*scopes.Scope { return slices.Clone(s.scopes) }

func (s *Snapshot) numFlags() int { return len(s.names) }

var emptySnapshot = Build(nil, scopes.NewRegistry(), -1)
