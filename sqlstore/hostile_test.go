package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// hostileConditions cost far more than linear time or memory to evaluate
// (issue 9): memory doubling with let, nested loops over ranges, huge
// ranges, repeat/join/map/sort/reduce over ranges, a 300-fold
// concatenation of an attribute. Each is named by the construct its
// refusal names.
func hostileConditions() []struct{ name, cond, want string } {
	var doubling strings.Builder
	doubling.WriteString(`let a0="xxxxxxxx";`)
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&doubling, "let a%d=a%d+a%d;", i, i-1, i-1)
	}
	doubling.WriteString("len(a40)>0")
	return []struct{ name, cond, want string }{
		{"let doubling", doubling.String(), "let is not allowed in conditions"},
		{"nested loops", `let a=1..9000; all(a, {all(a, {all(a, {true})})})`, "let is not allowed in conditions"},
		{"nested loops without let", `all(1..9000, {all(1..9000, {true})})`, "all() loops; conditions may not loop"},
		{"huge range", `len(1..1000000000) > 0`, "ranges (..) are not allowed in conditions"},
		{"repeat", `len(repeat("x", 1000000000)) > 0`, "repeat() builds a string"},
		{"join over a range", `join(map(1..1000000, "xxxxxxxx"), "") != ""`, "join() builds a string"},
		{"map over a range", `len(map(1..100000000, #)) > 0`, "map() loops"},
		{"sort over a range", `sort(1..100000000)[0] == 1`, "sort() sorts"},
		{"reduce over a range", `reduce(1..100000000, #acc + #) > 0`, "reduce() loops"},
		{"300-fold concatenation", strings.TrimSuffix(strings.Repeat("a+", 300), "+") + ` == ""`, "+ needs a number on one side"},
	}
}

// Saves refuse hostile conditions, on both dialects, with the line and the
// construct, and write nothing.
func TestSavesRefuseHostileConditions(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		base := "ok default 1 x\n"
		_, _, err := st.ReplaceText(ctx, base, nil, change("base", 0))
		require.NoError(t, err)
		log, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
		require.NoError(t, err)
		for _, h := range hostileConditions() {
			t.Run(h.name, func(t *testing.T) {
				start := time.Now()
				_, _, err := st.ReplaceText(ctx, base+"f default 2 x\n    when "+h.cond+"\n", nil, change("hostile text", 1))
				require.ErrorIs(t, err, sqlstore.ErrInvalid)
				var list rules.ErrorList
				require.ErrorAs(t, err, &list)
				require.Len(t, list, 1)
				assert.Equal(t, 3, list[0].Line)
				assert.Contains(t, list[0].Error(), "line 3: bad condition: "+h.want)

				rs := append(parse(t, base), rules.Rule{Flag: "f", Scope: "default", Priority: 2, Value: "x", Condition: h.cond})
				_, err = st.ReplaceRules(ctx, rs, change("hostile rules", 1))
				require.ErrorIs(t, err, sqlstore.ErrInvalid)
				assert.Contains(t, err.Error(), "rule 2 (f default 2): bad condition: "+h.want)
				assert.Less(t, time.Since(start), 5*time.Second, "refused without evaluating")

				got, rev, err := st.LoadRules(ctx)
				require.NoError(t, err)
				assert.Equal(t, int64(1), rev, "the revision is unchanged")
				assert.Equal(t, rules.Format(parse(t, base)), rules.Format(got), "no rule was written")
				after, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
				require.NoError(t, err)
				assert.Len(t, after, len(log), "no changelog entry was written")
			})
		}
	})
}

// A hostile condition written straight into the database (an older
// version, a hand edit) is loaded as it is; it is refused when compiled,
// as snapshots and eval -db compile it, and a save that keeps it is
// refused too.
func TestHostileConditionsStoredRaw(t *testing.T) {
	dsns := sqlstoretest.DSNs(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			_, _, err = st.ReplaceText(ctx, "f default 0 safe\n", nil, change("base", 0))
			require.NoError(t, err)

			raw := sqlstoretest.RawDB(t, dsn)
			insert := `INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES ($1, $2, $3, $4, $5)`
			hostile := hostileConditions()
			for i, h := range hostile {
				_, err := raw.ExecContext(ctx, insert, "f", "default", 100+i, "hostile", h.cond)
				require.NoError(t, err, h.name)
			}

			cfg, err := st.Load(ctx)
			require.NoError(t, err)
			require.Len(t, cfg.Rules, len(hostile)+1)
			errs := rules.Check(cfg.Rules, nil)
			require.Len(t, errs, len(hostile), "every stored hostile condition is refused")
			for _, e := range errs {
				assert.ErrorIs(t, e, rules.ErrCondition)
			}
			cand, err := st.ResolveRules(ctx, []string{"default"})
			require.NoError(t, err)
			assert.Len(t, cand, len(hostile)+1, "eval -db gets the stored candidates to compile and refuse")

			_, err = st.ReplaceRules(ctx, cfg.Rules, change("keep them", cfg.Revision))
			require.ErrorIs(t, err, sqlstore.ErrInvalid, "a save that keeps them is refused")
		})
	}
}
