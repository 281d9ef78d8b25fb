package sqlstore_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestKeysTakeEffectEverywhereAtOnce: on PostgreSQL a key created or
// revoked through one store (the CLI, another server) is known to the
// KeyCaches of two other servers within 50 ms, though their poll is an
// hour; Run returns only once its listener has stopped.
func TestKeysTakeEffectEverywhereAtOnce(t *testing.T) {
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	open := func() *sqlstore.Store {
		st, err := sqlstore.Open(context.Background(), dsn)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b, writer := open(), open(), open()
	ctx, cancel := context.WithCancel(context.Background())
	var caches []*sqlstore.KeyCache
	done := make(chan error, 2)
	for _, st := range []*sqlstore.Store{a, b} {
		c := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{Refresh: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		caches = append(caches, c)
		go func() { done <- c.Run(ctx) }()
	}
	require.Eventually(t, func() bool { return a.Listeners() == 1 && b.Listeners() == 1 }, 2*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return caches[0].Ready() && caches[1].Ready() }, 2*time.Second, time.Millisecond)
	time.Sleep(300 * time.Millisecond) // the LISTENs are issued

	known := func(key string, want bool) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < 2*time.Second {
			// When the checking lookups began: a lookup that misses waits
			// for a refresh (KeyCache.MissWait), which is not the time
			// the key table took to learn of the change.
			at := time.Since(start)
			_, ok0 := caches[0].Lookup(key)
			_, ok1 := caches[1].Lookup(key)
			if ok0 == want && ok1 == want {
				return at
			}
			time.Sleep(500 * time.Microsecond)
		}
		t.Fatalf("key known=%v not reached on both servers in 2s", want)
		return 0
	}
	key := sqlstore.NewKey()
	k, err := writer.CreateKey(context.Background(), key, "late", "read")
	require.NoError(t, err)
	took := known(key, true)
	t.Logf("created key known to both servers after %v", took)
	assert.Less(t, took, 50*time.Millisecond)

	_, err = writer.RevokeKey(context.Background(), k.ID)
	require.NoError(t, err)
	took = known(key, false)
	t.Logf("revoked key refused by both servers after %v", took)
	assert.Less(t, took, 50*time.Millisecond)

	cancel()
	for range caches {
		<-done
	}
	assert.Equal(t, 0, a.Listeners(), "Run returned: its listener has stopped")
	assert.Equal(t, 0, b.Listeners())
}

// TestKeyCacheLogsOutageOnce: while the database is cut off, refreshes
// fail with one text or another (a refused connection, a refresh whose
// deadline passed); the outage is logged once, whatever the texts, and
// its end once.
func TestKeyCacheLogsOutageOnce(t *testing.T) {
	server, _, p := proxiedServers(t)
	var logs strings.Builder
	c := sqlstore.NewKeyCache(server, sqlstore.KeyCacheOptions{Refresh: time.Hour, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	expired, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	require.NoError(t, c.Reload(ctx))
	p.Cut()
	var texts []string
	for i := range 6 {
		rctx := ctx
		if i%2 == 1 {
			rctx = expired
		}
		err := c.Reload(rctx)
		require.Error(t, err)
		if !slices.Contains(texts, err.Error()) {
			texts = append(texts, err.Error())
		}
	}
	require.Len(t, texts, 2, "two texts of one outage")
	p.Resume()
	require.Eventually(t, func() bool { return c.Reload(ctx) == nil }, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, c.Reload(ctx))
	assert.Equal(t, 1, strings.Count(logs.String(), "API keys refresh failed"), logs.String())
	assert.Equal(t, 1, strings.Count(logs.String(), "API keys refresh recovered"), logs.String())
}
