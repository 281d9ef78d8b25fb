package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// resolveFixture stores 10,000 rules over 2,000 flags spread over 200
// scopes, and returns 5 active scopes.
func resolveFixture(t testing.TB, st *sqlstore.Store) []string {
	rs := make([]rules.Rule, 0, 10000)
	for f := range 2000 {
		for r := range 5 {
			rs = append(rs, rules.Rule{Flag: fmt.Sprintf("app%d.feature%d.effect", f%20, f),
				Scope: fmt.Sprintf("team:t%d", (f*7+r*41)%200), Priority: 100 - r, Value: fmt.Sprintf("value %d", r)})
		}
	}
	_, err := st.ReplaceRules(context.Background(), rs, sqlstore.Change{Comment: "bench", Actor: "bench", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	require.NoError(t, st.Analyze(context.Background()))
	return []string{"team:t3", "team:t50", "team:t77", "team:t120", "team:t199"}
}

// TestResolvePlanUsesIndex shows the planner answers the prioritized query
// from the scope index on both dialects.
func TestResolvePlanUsesIndex(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		active := resolveFixture(t, st)
		plan, err := st.ExplainResolve(context.Background(), active)
		require.NoError(t, err)
		t.Logf("plan:\n%s", plan)
		assert.Contains(t, plan, "feature_rules_scope_idx", "the prioritized query uses the scope index")
		rs, err := st.ResolveRules(context.Background(), active)
		require.NoError(t, err)
		assert.NotEmpty(t, rs)
	})
}

func benchResolve(b *testing.B, st *sqlstore.Store) {
	active := resolveFixture(b, st)
	ctx := context.Background()
	plan, err := st.ExplainResolve(ctx, active)
	require.NoError(b, err)
	b.Logf("plan:\n%s", strings.TrimSpace(plan))
	query, _, _ := st.ResolveQuery(active)
	b.Logf("statement (one per op): %s", query)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		rs, err := st.ResolveRules(ctx, active)
		if err != nil {
			b.Fatal(err)
		}
		n = len(rs)
	}
	b.ReportMetric(float64(n), "flags/op")
}

// BenchmarkSQLResolve runs the single prioritized query on PostgreSQL:
// 10,000 rules over 2,000 flags, 5 active scopes.
func BenchmarkSQLResolve(b *testing.B) { benchResolve(b, sqlstoretest.Postgres(b)) }

// BenchmarkSQLResolveSQLite is the same query on SQLite.
func BenchmarkSQLResolveSQLite(b *testing.B) { benchResolve(b, sqlstoretest.SQLite(b)) }
