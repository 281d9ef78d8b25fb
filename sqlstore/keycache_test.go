package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

func TestKeyCache(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		c := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{})
		assert.False(t, c.Ready(), "knows no key before the first read")
		a, b := sqlstore.NewKey(), sqlstore.NewKey()
		ka, err := st.CreateKey(ctx, a, "web", "read_external")
		require.NoError(t, err)
		require.NoError(t, c.Reload(ctx))
		assert.True(t, c.Ready())

		id, scope, ok := c.Scope(a)
		assert.True(t, ok)
		assert.Equal(t, ka.ID, id)
		assert.Equal(t, "read_external", scope)
		_, _, ok = c.Scope(b)
		assert.False(t, ok, "not yet made")
		_, _, ok = c.Scope(a + "x")
		assert.False(t, ok)
		_, _, ok = c.Scope("")
		assert.False(t, ok)

		kb, err := st.CreateKey(ctx, b, "svc", "read")
		require.NoError(t, err)
		require.NoError(t, c.Reload(ctx))
		_, scope, ok = c.Scope(b)
		assert.True(t, ok)
		assert.Equal(t, "read", scope)

		_, err = st.RevokeKey(ctx, kb.ID)
		require.NoError(t, err)
		_, _, ok = c.Scope(b)
		assert.True(t, ok, "the table is what was last read")
		require.NoError(t, c.Reload(ctx))
		_, _, ok = c.Scope(b)
		assert.False(t, ok, "revoked after a refresh")
		_, _, ok = c.Scope(a)
		assert.True(t, ok)
	})
}

func TestKeyCacheRunSeesRevocationAndOutlivesTheStore(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		key := sqlstore.NewKey()
		k, err := st.CreateKey(ctx, key, "web", "read")
		require.NoError(t, err)
		c := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{Refresh: 20 * time.Millisecond})
		go c.Run(ctx)
		require.Eventually(t, func() bool { _, _, ok := c.Scope(key); return ok }, 2*time.Second, 5*time.Millisecond)
		start := time.Now()
		_, err = st.RevokeKey(ctx, k.ID)
		require.NoError(t, err)
		require.Eventually(t, func() bool { _, _, ok := c.Scope(key); return !ok }, time.Second, 5*time.Millisecond)
		t.Logf("revocation seen after %v", time.Since(start))

		other := sqlstore.NewKey()
		_, err = st.CreateKey(ctx, other, "svc", "read")
		require.NoError(t, err)
		require.Eventually(t, func() bool { _, _, ok := c.Scope(other); return ok }, time.Second, 5*time.Millisecond)
		// With the store gone, the keys last read stay in use.
		require.NoError(t, st.Close())
		require.Eventually(t, func() bool { return c.Err() != nil }, 2*time.Second, 5*time.Millisecond)
		_, _, ok := c.Scope(other)
		assert.True(t, ok)
	})
}

// TestKeyCacheFindsNewKeyAtFirstUse: a key created a moment ago (by
// another process, with no notification and the poll an hour away) works
// at its first use: the miss asks for a refresh and waits for it. A key
// that does not exist is refused within MissWait.
func TestKeyCacheFindsNewKeyAtFirstUse(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		c := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{Refresh: time.Hour})
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		defer func() { cancel(); <-done }()
		require.Eventually(t, c.Ready, 2*time.Second, time.Millisecond)
		time.Sleep(50 * time.Millisecond) // Run is in its loop

		for i := range 3 {
			key := sqlstore.NewKey()
			_, err := st.CreateKey(context.Background(), key, fmt.Sprintf("new %d", i), "read")
			require.NoError(t, err)
			k, ok := c.Lookup(key) // at once: no notification on SQLite, none awaited on PostgreSQL
			require.True(t, ok, "key %d found at its first use", i)
			assert.Equal(t, fmt.Sprintf("new %d", i), k.Name)
		}
		start := time.Now()
		_, ok := c.Lookup(sqlstore.NewKey())
		assert.False(t, ok)
		assert.Less(t, time.Since(start), sqlstore.MissWait+200*time.Millisecond)
	})
}
