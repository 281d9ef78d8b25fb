package sqlstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

func TestKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		n, err := st.CountKeys(ctx)
		require.NoError(t, err)
		assert.Zero(t, n)

		key := sqlstore.NewKey()
		assert.True(t, strings.HasPrefix(key, sqlstore.KeyPrefix))
		assert.Len(t, key, len(sqlstore.KeyPrefix)+43, "256 bits in base64url")
		assert.NotEqual(t, key, sqlstore.NewKey())

		k, err := st.CreateKey(ctx, key, " deploy bot ", "write")
		require.NoError(t, err)
		assert.Equal(t, "deploy bot", k.Name)
		assert.Equal(t, key[:7]+"…", k.Hint)
		assert.False(t, k.LastUsed.Valid)

		got, err := st.Authenticate(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, k.ID, got.ID)
		assert.Equal(t, "write", got.Scope)
		assert.True(t, got.LastUsed.Valid, "authenticating notes the use")
		_, err = st.Authenticate(ctx, key+"x")
		assert.ErrorIs(t, err, sqlstore.ErrNotFound)

		ks, err := st.Keys(ctx)
		require.NoError(t, err)
		require.Len(t, ks, 1)
		assert.True(t, ks[0].LastUsed.Valid)
		for _, k := range ks {
			assert.NotContains(t, k.Hint, key[8:], "the list never holds the key")
		}

		token, sess, err := st.CreateSession(ctx, got, time.Hour)
		require.NoError(t, err)
		assert.NotEmpty(t, sess.CSRF)
		s2, err := st.SessionByToken(ctx, token)
		require.NoError(t, err)
		assert.Equal(t, sess.CSRF, s2.CSRF)
		assert.Equal(t, "deploy bot", s2.Key.Name)
		_, err = st.SessionByToken(ctx, token[1:])
		assert.ErrorIs(t, err, sqlstore.ErrNotFound)

		expired, _, err := st.CreateSession(ctx, got, -time.Second)
		require.NoError(t, err)
		_, err = st.SessionByToken(ctx, expired)
		assert.ErrorIs(t, err, sqlstore.ErrNotFound, "expired session")

		revoked, err := st.RevokeKey(ctx, k.ID)
		require.NoError(t, err)
		assert.True(t, revoked.Revoked.Valid)
		_, err = st.Authenticate(ctx, key)
		assert.ErrorIs(t, err, sqlstore.ErrNotFound, "revoked key")
		_, err = st.SessionByToken(ctx, token)
		assert.ErrorIs(t, err, sqlstore.ErrNotFound, "revoking ends sessions")
		_, err = st.RevokeKey(ctx, k.ID)
		assert.NoError(t, err, "revoking twice")
		_, err = st.RevokeKey(ctx, 999)
		assert.ErrorIs(t, err, sqlstore.ErrNotFound)

		// Sessions end on logout.
		k2, err := st.CreateKey(ctx, "an-operator-chosen-key-of-length", "ops", "admin")
		require.NoError(t, err)
		assert.Equal(t, "an-o…", k2.Hint)
		tok2, _, err := st.CreateSession(ctx, k2, time.Hour)
		require.NoError(t, err)
		require.NoError(t, st.DeleteSession(ctx, tok2))
		_, err = st.SessionByToken(ctx, tok2)
		assert.ErrorIs(t, err, sqlstore.ErrNotFound)

		for _, bad := range []struct{ key, name, scope string }{
			{"short", "n", "read"},
			{"has a space in the middle of it", "n", "read"},
			{sqlstore.NewKey(), " ", "read"},
			{sqlstore.NewKey(), "n", ""},
		} {
			_, err := st.CreateKey(ctx, bad.key, bad.name, bad.scope)
			assert.ErrorIs(t, err, sqlstore.ErrInvalid, "%+v", bad)
		}
		_, err = st.CreateKey(ctx, key, "again", "read")
		assert.ErrorIs(t, err, sqlstore.ErrConflict, "the same key twice")
	})
}

func TestChangelogEntryText(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		e1, err := st.ReplaceRules(ctx, parse(t, "a default 1 x\n"), change("one", 0))
		require.NoError(t, err)
		_, err = st.ReplaceRules(ctx, parse(t, "a default 1 y\nb default 1 z\n"), change("two", 1))
		require.NoError(t, err)
		got, err := st.ChangelogEntry(ctx, e1.ID)
		require.NoError(t, err)
		assert.True(t, got.Text.Valid)
		assert.Equal(t, "a\tdefault\t1\tx\n", got.Text.String)
		assert.Equal(t, "one", got.Comment)
		_, err = st.ChangelogEntry(ctx, 12345)
		assert.ErrorIs(t, err, sqlstore.ErrNotFound)

		since, err := st.Changelog(ctx, sqlstore.ChangelogQuery{AfterRevision: 1})
		require.NoError(t, err)
		require.Len(t, since, 1)
		assert.Equal(t, "two", since[0].Comment)
	})
}
