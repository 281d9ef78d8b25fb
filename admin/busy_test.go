package admin_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestBusy: a save that cannot get the database's write lock within
// sqlstore.LockTimeout (another transaction holds PostgreSQL's revision
// row, or SQLite's write lock) is answered 503 with Retry-After and code
// busy ("busy, try again"), not unavailable; the rules page keeps the
// person's text and says so. Once the lock is free the save goes through.
func TestBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the lock timeout")
	}
	ctx := context.Background()
	check := func(t *testing.T, e *env, hold func() (release func())) {
		text := "a default 1 false\nb default 1 busy\n"
		warm := e.do("write", "GET", "/api/v1/rules", "", nil) // notes the key's use now
		require.Equal(t, 200, warm.code)
		tag := warm.header.Get("ETag")
		rev := e.revision()

		release := hold()
		r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(text), "If-Match", tag, "X-Comment", "while busy")
		assert.Equal(t, 503, r.code, r.body)
		assert.Equal(t, "busy", errCode(t, r.body), r.body)
		assert.Contains(t, r.body, "busy, try again")
		assert.Equal(t, "2", r.header.Get("Retry-After"))

		page := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "while busy", "base", fmt.Sprint(rev), "confirm", "1"))
		assert.Equal(t, 503, page.code)
		assert.Contains(t, page.body, "busy, try again")
		assert.Contains(t, page.body, "b default 1 busy", "the person's text is kept")

		if e.st.Dialect() == sqlstore.SQLite {
			// A key not used for a minute notes its use: a write too.
			first := e.do("admin", "GET", "/api/v1/rules", "", nil)
			assert.Equal(t, 503, first.code, first.body)
			assert.Equal(t, "busy", errCode(t, first.body))
			assert.Equal(t, "2", first.header.Get("Retry-After"))
		}
		release()
		assert.Equal(t, rev, e.revision(), "nothing written")
		r = e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(text), "If-Match", tag, "X-Comment", "after")
		assert.Equal(t, 200, r.code, r.body)
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "rules.db")
		st, err := sqlstore.Open(ctx, path)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		check(t, newEnv(t, st), func() func() { return sqlstoretest.HoldWriteLock(t, path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := sqlstoretest.PostgresDSN(t)
		if dsn == "" {
			t.Skipf("%s is not set", sqlstoretest.EnvDSN)
		}
		st, err := sqlstore.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		check(t, newEnv(t, st), func() func() { return sqlstoretest.HoldWriteLock(t, dsn) })
	})
}
