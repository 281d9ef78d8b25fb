package controller

import (
	"context"
	"fmt"

	"github.com/scopeflags/scopeflags/scopes"
)

// SQL is a Source that asks the database for each controller: it lists the
// scopes the rules mention, checks each against the controller's scope set
// (so, unlike Live, every such scope is checked, once), and runs the single
// prioritized query for the active ones. The snapshot it returns holds, for
// each flag, the highest-priority unconditional active rule and the
// conditional active rules above it, which the controller filters.
type SQL struct {
	r   ScopeResolver
	reg *scopes.Registry

	// Options are used to build each controller's snapshot: declarations
	// type the values the query returns.
	Options BuildOptions
}

// NewSQL returns a Source that resolves through r.
func NewSQL(r ScopeResolver, reg *scopes.Registry) *SQL { return &SQL{r: r, reg: reg} }

// Snapshot implements Source.
func (q *SQL) Snapshot(ctx context.Context, set *scopes.Set) (*Snapshot, error) {
	names, err := q.r.ScopeNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("controller: list scopes: %w", err)
	}
	active := q.ActiveScopes(set, names)
	rs, err := q.r.ResolveRules(ctx, active)
	if err != nil {
		return nil, fmt.Errorf("controller: resolve rules: %w", err)
	}
	return Build(rs, q.reg, -1, q.Options), nil
}

// ActiveScopes returns the names that are active in set.
func (q *SQL) ActiveScopes(set *scopes.Set, names []string) []string {
	var active []string
	for _, n := range names {
		if set.Active(q.reg.Compile(n)) {
			active = append(active, n)
		}
	}
	return active
}
