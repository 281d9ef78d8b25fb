package sqlstore_test

import (
	"context"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/internal/leaktest"
	"github.com/scopeflags/scopeflags/internal/testproxy"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

var _ controller.Watcher = (*sqlstore.Store)(nil)

// twoServers opens two stores on one PostgreSQL schema: the server under
// test and another that saves.
func twoServers(t *testing.T) (server, other *sqlstore.Store) {
	t.Helper()
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	ctx := context.Background()
	server, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	other, err = sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	return server, other
}

// proxiedServers is twoServers with the server under test reaching
// PostgreSQL through a proxy the test controls.
func proxiedServers(t *testing.T) (server, other *sqlstore.Store, p *testproxy.Proxy) {
	t.Helper()
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	p = testproxy.New(t, u.Host)
	u.Host = p.Addr()
	server, err = sqlstore.Open(context.Background(), u.String())
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	other, err = sqlstore.Open(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	return server, other, p
}

func saveValue(t *testing.T, st *sqlstore.Store, v string) int64 {
	t.Helper()
	e, err := st.ReplaceRules(context.Background(), []rules.Rule{{Flag: "a.flag", Scope: "default", Value: v}},
		sqlstore.Change{Comment: "test", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	return e.Revision
}

func TestWatchOnSQLiteIsNil(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	assert.Nil(t, st.Watch(context.Background()), "SQLite has nothing to listen to: readers poll")
}

func TestWatchSignalsEverySave(t *testing.T) {
	server, other := twoServers(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := server.Watch(ctx)
	require.NotNil(t, ch)
	require.Eventually(t, func() bool { return server.Listeners() == 1 }, time.Second, time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the LISTEN is issued
	drain := func() {
		for {
			select {
			case <-ch:
			default:
				return
			}
		}
	}
	drain()
	for i := range 3 {
		start := time.Now()
		saveValue(t, other, "v"+string(rune('0'+i)))
		select {
		case <-ch:
			t.Logf("save %d signalled after %v", i, time.Since(start))
		case <-time.After(2 * time.Second):
			t.Fatalf("save %d: no signal within 2 s", i)
		}
		drain()
	}
	cancel()
	require.Eventually(t, func() bool { return server.Listeners() == 0 }, 2*time.Second, 5*time.Millisecond, "the listener stops with ctx")
}

// countingSource counts full loads; Watch is the store's.
type countingSource struct {
	*sqlstore.Store
	loads atomic.Int64
}

func (c *countingSource) Load(ctx context.Context) (*rules.Config, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx)
}

func TestLiveFollowsNotificationsAndCoalesces(t *testing.T) {
	server, other := twoServers(t)
	src := &countingSource{Store: server}
	live := controller.NewLive(src, controller.LiveOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go live.Run(ctx, time.Hour) // no poll to speak of: changes come by notification
	require.Eventually(t, live.Ready, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return server.Listeners() == 1 }, time.Second, time.Millisecond)
	time.Sleep(200 * time.Millisecond)

	for i := range 3 {
		start := time.Now()
		rev := saveValue(t, other, "x"+string(rune('0'+i)))
		require.Eventually(t, func() bool { return live.Current().Revision() == rev }, 2*time.Second, time.Millisecond,
			"revision %d reaches the server by notification", rev)
		took := time.Since(start)
		t.Logf("change %d seen after %v", i, took)
		assert.Less(t, took, time.Second)
	}

	// A burst of 50 saves costs a few reloads, not 50.
	before := src.loads.Load()
	var last int64
	for i := range 50 {
		last = saveValue(t, other, "burst"+string(rune('A'+i%26))+string(rune('a'+i/26)))
	}
	require.Eventually(t, func() bool { return live.Current().Revision() == last }, 3*time.Second, time.Millisecond)
	loads := src.loads.Load() - before
	t.Logf("50 saves, %d loads", loads)
	assert.Less(t, loads, int64(25), "reloads coalesce")
	assert.Positive(t, loads)
}

// A notification sent while the listener is disconnected is lost; the
// reload after the reconnect recovers it. The poll is an hour, so only
// that reload can.
func TestLostNotificationRecoveredAfterReconnect(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	server, other, p := proxiedServers(t)

	live := controller.NewLive(server, controller.LiveOptions{})
	go live.Run(ctx, time.Hour)
	require.Eventually(t, live.Ready, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return server.Listeners() == 1 }, time.Second, time.Millisecond)
	time.Sleep(200 * time.Millisecond)

	p.Cut()
	cutAt := time.Now()
	rev := saveValue(t, other, "while-cut")
	time.Sleep(1500 * time.Millisecond)
	assert.NotEqual(t, rev, live.Current().Revision(), "nothing could tell the server while cut")
	reconnects, failures := server.ListenerStats()
	t.Logf("while cut for %v: %d failed connection attempts", time.Since(cutAt), failures)
	// lib/pq's listener backs off 100 ms, 200 ms, 400 ms, ...: a handful
	// of attempts in 1.5 s, not hundreds.
	assert.GreaterOrEqual(t, failures, int64(2), "it keeps trying")
	assert.LessOrEqual(t, failures, int64(8), "with backoff")
	assert.Zero(t, reconnects)

	p.Resume()
	resumed := time.Now()
	require.Eventually(t, func() bool { return live.Current().Revision() == rev }, 10*time.Second, 5*time.Millisecond,
		"the reload after the reconnect finds the lost change")
	t.Logf("lost change recovered %v after the network came back", time.Since(resumed))
	reconnects, _ = server.ListenerStats()
	assert.Equal(t, int64(1), reconnects)

	// And notifications flow again.
	start := time.Now()
	rev = saveValue(t, other, "after")
	require.Eventually(t, func() bool { return live.Current().Revision() == rev }, 2*time.Second, time.Millisecond)
	t.Logf("next change seen after %v", time.Since(start))
}

// Watch returns at once even when the database cannot be reached, so the
// engine's fallback poll runs; the listener connects once it is back.
func TestWatchDoesNotWaitForTheDatabase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	server, other, p := proxiedServers(t)

	p.Cut()
	done := make(chan (<-chan struct{}))
	go func() { done <- server.Watch(ctx) }()
	var ch <-chan struct{}
	select {
	case ch = <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Watch waited for the database")
	}
	require.NotNil(t, ch)
	p.Resume()
	saveValue(t, other, "after-resume")
	// Once connected, saves signal (the first signal may be the connect).
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-ch:
			return
		case <-deadline:
			t.Fatal("no signal after the database came back")
		case <-time.After(200 * time.Millisecond):
			saveValue(t, other, "again-"+time.Now().Format("150405.000"))
		}
	}
}

// TestCloseJoinsListeners: Close ends a Watch whose context is never done
// and a running KeyCache, and returns with none of their goroutines left
// (the database's own included).
func TestCloseJoinsListeners(t *testing.T) {
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	for _, tc := range []struct {
		name  string
		start func(st *sqlstore.Store) (stop func())
	}{
		{"watch", func(st *sqlstore.Store) func() {
			st.Watch(context.Background())
			return func() {}
		}},
		{"key cache", func(st *sqlstore.Store) func() {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{}).Run(ctx) }()
			return func() { cancel(); <-done }
		}},
		{"watch after close", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := leaktest.Check(t)
			st, err := sqlstore.Open(context.Background(), dsn)
			require.NoError(t, err)
			if tc.start == nil {
				require.NoError(t, st.Close())
				assert.Nil(t, st.Watch(context.Background()), "a closed store listens no more")
				check()
				return
			}
			stop := tc.start(st)
			require.Eventually(t, func() bool { return st.Listeners() == 1 }, 5*time.Second, time.Millisecond)
			require.NoError(t, st.Close())
			assert.Zero(t, st.Listeners())
			stop()
			check()
		})
	}
}
