package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

func parse(t testing.TB, text string) []rules.Rule {
	rs, _, err := rules.Parse(text, nil)
	require.NoError(t, err)
	return rs
}

func change(comment string, base int64) sqlstore.Change {
	return sqlstore.Change{Comment: comment, Actor: "tester", BaseRevision: base}
}

// eachStore runs f against a fresh SQLite store and a fresh PostgreSQL store.
func eachStore(t *testing.T, f func(t *testing.T, st *sqlstore.Store)) {
	t.Run("sqlite", func(t *testing.T) { f(t, sqlstoretest.SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, sqlstoretest.Postgres(t)) })
}

func TestEmptyStore(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		rs, rev, err := st.LoadRules(ctx)
		require.NoError(t, err)
		assert.Empty(t, rs)
		assert.Equal(t, int64(0), rev)
		es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
		require.NoError(t, err)
		assert.Empty(t, es)
		names, err := st.ScopeNames(ctx)
		require.NoError(t, err)
		assert.Empty(t, names)
	})
}

func TestReopenIsIdempotent(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		path := t.TempDir() + "/x.db"
		for i := range 3 {
			st, err := sqlstore.Open(ctx, path)
			require.NoError(t, err)
			if i == 0 {
				_, err = st.ReplaceRules(ctx, parse(t, "a default 1 x\n"), change("first", 0))
				require.NoError(t, err)
			}
			rs, rev, err := st.LoadRules(ctx)
			require.NoError(t, err)
			assert.Len(t, rs, 1)
			assert.Equal(t, int64(1), rev)
			require.NoError(t, st.Close())
		}
	})
	t.Run("postgres concurrent opens", func(t *testing.T) {
		dsn := sqlstoretest.PostgresDSN(t)
		if dsn == "" {
			t.Skip("no PostgreSQL configured")
		}
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := sqlstore.Open(ctx, dsn)
				if err == nil {
					_, _, err = st.LoadRules(ctx)
					st.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			assert.NoError(t, err)
		}
	})
}

func TestReplaceAndLoad(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		text := "ui.icing team:qa 100 chocolate  with  spaces\nui.icing default -5 vänilla ☃\nb.flag userslice:1,3 7 x\n"
		before := time.Now()
		e, err := st.ReplaceRules(ctx, parse(t, text), change("QA asked for chocolate", 0))
		require.NoError(t, err)
		assert.Equal(t, int64(1), e.Revision)
		assert.Positive(t, e.ID)

		rs, rev, err := st.LoadRules(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1), rev)
		assert.Equal(t, rules.Format(parse(t, text)), rules.Format(rs))
		assert.Equal(t, "b.flag", rs[0].Flag, "normalised order")
		assert.Equal(t, 100, rs[1].Priority)
		assert.Equal(t, "vänilla ☃", rs[2].Value)

		es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
		require.NoError(t, err)
		require.Len(t, es, 1)
		assert.Equal(t, "QA asked for chocolate", es[0].Comment)
		assert.Equal(t, "tester", es[0].Actor)
		assert.Equal(t, int64(1), es[0].Revision)
		assert.WithinDuration(t, before, es[0].Time, 5*time.Second)
		assert.Equal(t, time.UTC, es[0].Time.Location())
		assert.Contains(t, es[0].Diff, "+ui.icing\tteam:qa\t100\tchocolate  with  spaces\n")
		assert.NotContains(t, es[0].Diff, "+++")

		// A second save: the diff shows the change only, with context.
		e2, err := st.ReplaceRules(ctx, parse(t, "ui.icing team:qa 100 vanilla\nui.icing default -5 vänilla ☃\nb.flag userslice:1,3 7 x\n"), change("back to vanilla", 1))
		require.NoError(t, err)
		assert.Equal(t, int64(2), e2.Revision)
		assert.Equal(t, "@@ -1,3 +1,3 @@\n b.flag\tuserslice:1,3\t7\tx\n-ui.icing\tteam:qa\t100\tchocolate  with  spaces\n+ui.icing\tteam:qa\t100\tvanilla\n ui.icing\tdefault\t-5\tvänilla ☃\n", e2.Diff)
		rev, err = st.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(2), rev)

		names, err := st.ScopeNames(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"default", "team:qa", "userslice:1,3"}, names)

		// Empty text deletes every rule; the save is still recorded.
		e3, _, err := st.ReplaceText(ctx, "", nil, change("clear", 2))
		require.NoError(t, err)
		rs, rev, err = st.LoadRules(ctx)
		require.NoError(t, err)
		assert.Empty(t, rs)
		assert.Equal(t, int64(3), rev)
		assert.Equal(t, 3, strings.Count(e3.Diff, "\n-"), e3.Diff)
	})
}

func TestRefusedWritesChangeNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		_, err := st.ReplaceRules(ctx, parse(t, "a default 1 x\n"), change("start", 0))
		require.NoError(t, err)
		state := func() string {
			rs, rev, err := st.LoadRules(ctx)
			require.NoError(t, err)
			es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
			require.NoError(t, err)
			return fmt.Sprintf("%d %d\n%s", rev, len(es), rules.Format(rs))
		}
		want := state()
		tests := []struct {
			name string
			rs   []rules.Rule
			c    sqlstore.Change
			is   error
			msg  string
		}{
			{"stale revision", parse(t, "b default 1 y\n"), change("late", 0), sqlstore.ErrConflict, "the rules changed since revision 0"},
			{"no comment", parse(t, "b default 1 y\n"), change(" ", 1), sqlstore.ErrInvalid, "comment is required"},
			{"no actor", parse(t, "b default 1 y\n"), sqlstore.Change{Comment: "x", BaseRevision: 1}, sqlstore.ErrInvalid, "actor is required"},
			{"duplicate priority", []rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: "x"}, {Flag: "a", Scope: "team:b", Priority: 1, Value: "y"}}, change("dup", 1), sqlstore.ErrInvalid, `rule 2: duplicate priority for flag "a": 1`},
			{"duplicate scope", []rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: "x"}, {Flag: "a", Scope: "default", Priority: 2, Value: "y"}}, change("dup", 1), sqlstore.ErrInvalid, `duplicate scope for flag "a"`},
			{"bad flag", []rules.Rule{{Flag: "a..b", Scope: "default", Priority: 1, Value: "x"}}, change("bad", 1), sqlstore.ErrInvalid, `bad flag name "a..b"`},
			{"empty value", []rules.Rule{{Flag: "a", Scope: "default", Priority: 1}}, change("bad", 1), sqlstore.ErrInvalid, "missing value"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := st.ReplaceRules(ctx, tt.rs, tt.c)
				require.ErrorIs(t, err, tt.is)
				assert.Contains(t, err.Error(), tt.msg)
				assert.Equal(t, want, state(), "nothing written")
			})
		}
		t.Run("parse errors", func(t *testing.T) {
			_, _, err := st.ReplaceText(ctx, "ok default 1 x\nbad line\n", nil, change("x", 1))
			require.ErrorIs(t, err, sqlstore.ErrInvalid)
			var list rules.ErrorList
			require.ErrorAs(t, err, &list)
			assert.Equal(t, 2, list[0].Line)
			assert.Equal(t, want, state())
		})
	})
}

func TestChangelogPaging(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		for i := range 25 {
			_, err := st.ReplaceRules(ctx, parse(t, fmt.Sprintf("a default 1 v%d\n", i)), change(fmt.Sprintf("change %d", i), int64(i)))
			require.NoError(t, err)
		}
		var seen []string
		var before int64
		for {
			page, err := st.Changelog(ctx, sqlstore.ChangelogQuery{Limit: 10, Before: before})
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			assert.LessOrEqual(t, len(page), 10)
			for _, e := range page {
				seen = append(seen, e.Comment)
			}
			before = page[len(page)-1].ID
		}
		require.Len(t, seen, 25)
		assert.Equal(t, "change 24", seen[0], "newest first")
		assert.Equal(t, "change 0", seen[24])
	})
}

func TestResolveRules(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		_, err := st.ReplaceRules(ctx, parse(t, `
a default 1 a-default
a team:x  5 a-team
a team:y  9 a-y
b team:y  3 b-y
c default -2 c-default
`), change("setup", 0))
		require.NoError(t, err)
		tests := []struct {
			active []string
			want   string
		}{
			{nil, ""},
			{[]string{"default"}, "a\tdefault\t1\ta-default\nc\tdefault\t-2\tc-default\n"},
			{[]string{"default", "team:x"}, "a\tteam:x\t5\ta-team\nc\tdefault\t-2\tc-default\n"},
			{[]string{"team:x", "team:y", "default"}, "a\tteam:y\t9\ta-y\nb\tteam:y\t3\tb-y\nc\tdefault\t-2\tc-default\n"},
			{[]string{"nothing"}, ""},
		}
		for _, tt := range tests {
			t.Run(strings.Join(tt.active, ","), func(t *testing.T) {
				rs, err := st.ResolveRules(ctx, tt.active)
				require.NoError(t, err)
				assert.Equal(t, tt.want, rules.Format(rs))
			})
		}
	})
}

func TestConcurrentWriters(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		_, err := st.ReplaceRules(ctx, parse(t, "a default 1 start\n"), change("start", 0))
		require.NoError(t, err)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				text := fmt.Sprintf("a default 1 writer%d\nb%d default 1 x\n", i, i)
				_, errs[i] = st.ReplaceRules(ctx, parse(t, text), change(fmt.Sprintf("writer %d", i), 1))
			}()
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, won, "two writers won")
				won = i
			} else {
				require.ErrorIs(t, err, sqlstore.ErrConflict, "writer %d", i)
			}
		}
		require.NotEqual(t, -1, won, "one writer must win")
		rs, rev, err := st.LoadRules(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(2), rev)
		assert.Equal(t, fmt.Sprintf("a\tdefault\t1\twriter%d\nb%d\tdefault\t1\tx\n", won, won), rules.Format(rs), "the rules are the winner's, never a mix")
		es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
		require.NoError(t, err)
		assert.Len(t, es, 2)
		assert.Equal(t, fmt.Sprintf("writer %d", won), es[0].Comment)
	})
}

func TestLargeRuleSet(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		rs := make([]rules.Rule, 0, 100000)
		for f := range 20000 {
			for r := range 5 {
				rs = append(rs, rules.Rule{Flag: fmt.Sprintf("app%d.f%d", f%10, f), Scope: fmt.Sprintf("team:t%d", r), Priority: r, Value: "v"})
			}
		}
		_, err := st.ReplaceRules(ctx, rs, change("big", 0))
		require.NoError(t, err)
		got, _, err := st.LoadRules(ctx)
		require.NoError(t, err)
		assert.Len(t, got, 100000)
	})
}

func TestUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := sqlstore.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	require.ErrorIs(t, err, sqlstore.ErrUnavailable)

	_, err = sqlstore.Open(ctx, t.TempDir()+"/no/such/dir/x.db")
	require.ErrorIs(t, err, sqlstore.ErrUnavailable)

	st := sqlstoretest.SQLite(t)
	require.NoError(t, st.Close())
	_, _, err = st.LoadRules(ctx)
	require.Error(t, err, "a closed store errors rather than panicking")
}

func TestDiff(t *testing.T) {
	assert.Equal(t, "", sqlstore.Diff("a\n", "a\n"))
	assert.Equal(t, "@@ -1 +1 @@\n-a\n+b\n", sqlstore.Diff("a\n", "b\n"))
	assert.True(t, errors.Is(fmt.Errorf("x: %w", sqlstore.ErrConflict), sqlstore.ErrConflict))
}

// TestDialect: a store knows its database as a Dialect whose String is
// the driver's name; an unknown value names itself.
func TestDialect(t *testing.T) {
	want := map[string]sqlstore.Dialect{"sqlite": sqlstore.SQLite, "postgres": sqlstore.PostgreSQL}
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			st, err := sqlstore.Open(context.Background(), dsn)
			require.NoError(t, err)
			defer st.Close()
			assert.Equal(t, want[name], st.Dialect())
			assert.Equal(t, name, st.Dialect().String())
		})
	}
	assert.Equal(t, "sqlstore.Dialect(7)", sqlstore.Dialect(7).String())
}
