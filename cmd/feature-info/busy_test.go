package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestImportBusy: an import that cannot get the database's write lock
// within sqlstore.LockTimeout (SQLite's write lock, PostgreSQL's revision
// row) says the database is busy and to try again, not that it is
// unavailable, and exits 1; once the lock is free it goes through.
func TestImportBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the lock timeout")
	}
	ctx := context.Background()
	check := func(t *testing.T, dsn string, hold func() (release func())) {
		dir := t.TempDir()
		release := hold()
		start := time.Now()
		res := runCLI(t, dir, "import", "-db", dsn, "-comment", "while busy", testdata(t, "valid.rules"))
		t.Logf("after %v: %s", time.Since(start), res.stderr)
		assert.Equal(t, 1, res.code)
		assert.Contains(t, res.stderr, "sqlstore: busy")
		assert.Contains(t, res.stderr, "try again")
		assert.NotContains(t, res.stderr, "unavailable")
		release()
		res = runCLI(t, dir, "import", "-db", dsn, "-comment", "after", testdata(t, "valid.rules"))
		assert.Equal(t, 0, res.code, res.stderr)
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "rules.db")
		st, err := sqlstore.Open(ctx, path)
		require.NoError(t, err)
		require.NoError(t, st.Close())
		// Opening the store applies the schema, a write too: busy there.
		check(t, path, func() func() { return sqlstoretest.HoldWriteLock(t, path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := sqlstoretest.PostgresDSN(t)
		if dsn == "" {
			t.Skipf("%s is not set", sqlstoretest.EnvDSN)
		}
		st, err := sqlstore.Open(ctx, dsn) // the schema, before the lock
		require.NoError(t, err)
		require.NoError(t, st.Close())
		check(t, dsn, func() func() { return sqlstoretest.HoldWriteLock(t, dsn) })
	})
}
