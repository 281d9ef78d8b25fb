package controller

import (
	"context"
	"errors"
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
	r    ScopeResolver
	reg  *scopes.Registry
	opts BuildOptions
}

// NewSQL returns a Source that resolves through r, compiling scopes with
// reg (the built-in handlers when nil) and building each controller's
// snapshot with opts: declarations type the values the query returns.
func NewSQL(r ScopeResolver, reg *scopes.Registry, opts BuildOptions) *SQL {
	if reg == nil {
		reg = scopes.NewRegistry()
	}
	return &SQL{r: r, reg: reg, opts: opts}
}

// Snapshot implements Source.
func (q *SQL) Snapshot(ctx context.Context, set *scopes.Set) (*Snapshot, error) {
	names, err := q.r.ScopeNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("controller: list scopes: %w", err)
	}
	active, pending := q.ActiveScopes(set, names)
	rs, err := q.r.ResolveRules(ctx, active)
	if err != nil {
		return nil, fmt.Errorf("controller: resolve rules: %w", err)
	}
	return Build(rs, q.reg, -1, q.opts), pending
}

// ActiveScopes returns the names that are active in set, and those whose
// check failed: the controller reaches their rules and answers ERROR for
// them, as it does over a Live snapshot. pending wraps
// scopes.ErrInProgress if a scope could not be checked yet (the snapshot
// then serves one lookup only).
func (q *SQL) ActiveScopes(set *scopes.Set, names []string) (active []string, pending error) {
	for _, n := range names {
		ok, err := set.Check(q.reg.Compile(n))
		if errors.Is(err, scopes.ErrInProgress) {
			pending = err
		}
		if ok || err != nil {
			active = append(active, n)
		}
	}
	return active, pending
}
