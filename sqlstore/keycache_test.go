package sqlstore_test

import (
	"context"
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
