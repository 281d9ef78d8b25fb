package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestMigrateCommand: on a database of an older release, commands other
// than migrate and serve stop, naming both versions; migrate -dry-run
// lists the pending migrations and applies none; migrate applies them,
// and then the others run. Golden output, on SQLite and PostgreSQL.
func TestMigrateCommand(t *testing.T) {
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			sqlstoretest.Release(t, dsn, 2)
			var out strings.Builder
			run := func(code int, args ...string) {
				t.Helper()
				res := runCLI(t, dir, args...)
				require.Equal(t, code, res.code, "%q: %s%s", args, res.stdout, res.stderr)
				out.WriteString("$ feature-info " + strings.Join(args, " ") + "\n" + res.stdout + res.stderr)
			}
			run(1, "export", "-db", dsn)
			run(1, "eval", "-db", dsn, "-scope", "team:qa", "ui.icing")
			run(1, "keys", "list", "-db", dsn)
			run(0, "migrate", "-db", dsn, "-dry-run")
			run(1, "export", "-db", dsn)
			run(0, "migrate", "-db", dsn)
			run(0, "migrate", "-db", dsn)
			run(0, "export", "-db", dsn)
			empty := sqlstoretest.DSNs(t)[name]
			run(0, "migrate", "-db", empty, "-dry-run")
			run(0, "migrate", "-db", empty)
			run(2, "migrate", "-db", dsn, "extra")
			golden.Check(t, "migrate.golden", strings.NewReplacer(empty, "EMPTY", dsn, "DSN").Replace(out.String()))
		})
	}
}

// TestServeMigrates: serve upgrades a database of the first release and
// serves its rules.
func TestServeMigrates(t *testing.T) {
	ctx := context.Background()
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			sqlstoretest.Release(t, dsn, 1)
			m := &Main{DSN: dsn, Addr: "127.0.0.1:0", AdminKey: sqlstore.NewKey(), Log: quietLog(t)}
			require.NoError(t, m.Run(ctx))
			t.Cleanup(func() { m.Close() })
			rs, rev, err := m.Store.LoadRules(ctx)
			require.NoError(t, err)
			assert.Equal(t, int64(2), rev)
			assert.Len(t, rs, 3)
			up, err := sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{DryRun: true})
			require.NoError(t, err)
			assert.Equal(t, sqlstore.SchemaVersion(), up.From)
		})
	}
}
