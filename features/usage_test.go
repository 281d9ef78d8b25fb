package features_test

import (
	"context"
	"database/sql"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/pgcluster"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

const usageRules = `
usage.color  team:qa  10 red
usage.color  default  0  blue
usage.plain  default  0  on
`

// saveUsageRules stores usageRules through st.
func saveUsageRules(t *testing.T, st *sqlstore.Store) {
	t.Helper()
	rs, _, err := rules.Parse(usageRules, scopes.NewRegistry())
	require.NoError(t, err)
	_, err = st.ReplaceAll(context.Background(), rs, nil, sqlstore.Change{Comment: "usage", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
}

// storedCount sums flag_usage's counts of flag (and value, if not "").
func storedCount(t *testing.T, db *sql.DB, flag, value string) int64 {
	t.Helper()
	var n sql.NullInt64
	q := `SELECT SUM(count) FROM flag_usage WHERE flag = $1 AND ($2 = '' OR value = $2)`
	require.NoError(t, db.QueryRowContext(context.Background(), q, flag, value).Scan(&n))
	return n.Int64
}

// TestEngineFlushesUsage: an application engine on a SQL store counts its
// requests' first lookups and writes them to flag_usage, with its role and
// host, on both dialects; memoised re-reads are not counted; a flush with
// nothing new writes nothing.
func TestEngineFlushesUsage(t *testing.T) {
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			saveUsageRules(t, st)
			e := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), ServerRole: "web",
				Usage: features.UsageConfig{Host: "host-a"}})
			require.NoError(t, e.Live().Reload(ctx, true))
			for i := range 7 {
				rctx := e.WithScopes(ctx, scopes.Env{User: scopes.StaticUser{ID: 1, Teams: []string{"qa"}}})
				if i%2 == 0 {
					rctx = e.WithScopes(ctx, scopes.Env{})
				}
				features.GetFlag(rctx, "usage.color")
				features.GetFlag(rctx, "usage.color") // memoised
				features.GetFlag(rctx, "usage.plain")
			}
			require.NoError(t, e.FlushUsage(ctx))
			require.NoError(t, e.FlushUsage(ctx)) // nothing new
			db := sqlstoretest.RawDB(t, dsn)
			assert.EqualValues(t, 3, storedCount(t, db, "usage.color", "red"))
			assert.EqualValues(t, 4, storedCount(t, db, "usage.color", "blue"))
			assert.EqualValues(t, 7, storedCount(t, db, "usage.plain", ""))
			var role, host, reason string
			require.NoError(t, db.QueryRowContext(ctx, `SELECT server_role, server_host, reason FROM flag_usage WHERE flag = 'usage.color' AND value = 'red'`).Scan(&role, &host, &reason))
			assert.Equal(t, []string{"web", "host-a", "TARGETING_MATCH"}, []string{role, host, reason})

			u, err := st.Usage(ctx, sqlstore.UsageQuery{Flag: "usage.plain"})
			require.NoError(t, err)
			require.Len(t, u, 1)
			assert.EqualValues(t, 7, u[0].Total)
			assert.False(t, u[0].LastEvaluated.IsZero())
		})
	}
}

// failingSink refuses while down, else hands the report to the store.
type failingSink struct {
	st    *sqlstore.Store
	down  atomic.Bool
	calls atomic.Int64
}

func (f *failingSink) AddUsage(ctx context.Context, r controller.UsageReport) error {
	f.calls.Add(1)
	if f.down.Load() {
		return sqlstore.ErrUnavailable
	}
	return f.st.AddUsage(ctx, r)
}

// TestUsageFlushKeepsCountsOnFailure: a failed flush loses nothing and a
// later one writes everything once; Run's last flush writes what is left
// when it returns.
func TestUsageFlushKeepsCountsOnFailure(t *testing.T) {
	ctx := context.Background()
	st := sqlstoretest.SQLite(t)
	saveUsageRules(t, st)
	sink := &failingSink{st: st}
	e := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(),
		Usage: features.UsageConfig{Sink: sink, Flush: time.Hour}})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.Run(runCtx); close(done) }()
	require.Eventually(t, func() bool { return e.Live().Current().Revision() > 0 }, 5*time.Second, 5*time.Millisecond)
	get := func(n int) {
		for range n {
			features.GetFlag(e.WithScopes(ctx, scopes.Env{}), "usage.plain")
		}
	}
	get(5)
	sink.down.Store(true)
	require.Error(t, e.FlushUsage(ctx))
	get(3)
	require.Error(t, e.FlushUsage(ctx))
	sink.down.Store(false)
	require.NoError(t, e.FlushUsage(ctx))
	get(2)
	cancel()
	<-done // Run flushed the last 2 as it returned
	u, err := st.Usage(ctx, sqlstore.UsageQuery{Flag: "usage.plain"})
	require.NoError(t, err)
	assert.EqualValues(t, 10, u[0].Total)
	assert.EqualValues(t, 4, sink.calls.Load())
}

// TestUsageThroughDatabaseOutage stops a private PostgreSQL cluster under
// an engine flushing every 50 ms for 5 s while requests go on: evaluation
// is never held up, and once the database is back every count is stored
// exactly once.
func TestUsageThroughDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := pgcluster.New(t)
	ctx := context.Background()
	dsn := c.DSN() + "&connect_timeout=2"
	st, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	saveUsageRules(t, st)
	e := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: slog.New(slog.DiscardHandler),
		Usage: features.UsageConfig{Flush: 50 * time.Millisecond}})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { return e.Live().Current().Revision() > 0 }, 5*time.Second, 5*time.Millisecond)

	var made atomic.Int64
	var slowest atomic.Int64
	stop := make(chan struct{})
	reqs := make(chan struct{})
	go func() {
		defer close(reqs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if features.GetFlag(e.WithScopes(ctx, scopes.Env{}), "usage.plain") != "on" {
				panic("wrong value")
			}
			made.Add(1)
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	c.Stop()
	duringBefore := made.Load()
	time.Sleep(5 * time.Second)
	during := made.Load() - duringBefore
	c.Start()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-reqs
	t.Logf("%d evaluations, %d while the database was down; slowest %v", made.Load(), during, time.Duration(slowest.Load()))
	assert.Greater(t, during, int64(100), "evaluation went on while the database was down")
	assert.Less(t, time.Duration(slowest.Load()), 500*time.Millisecond, "an evaluation waited for a flush")

	db := sqlstoretest.RawDB(t, dsn)
	require.Eventually(t, func() bool {
		return storedCount(t, db, "usage.plain", "") == made.Load()
	}, 15*time.Second, 50*time.Millisecond, "every count stored once the database is back")
	time.Sleep(200 * time.Millisecond) // a few more flushes: still not counted twice
	assert.Equal(t, made.Load(), storedCount(t, db, "usage.plain", ""))
}
