// Package sqlstoretest gives tests real, isolated stores: a SQLite file in
// a temporary directory, and a fresh schema in the PostgreSQL named by the
// SCOPEFLAGS_TEST_POSTGRES environment variable.
//
// When SCOPEFLAGS_TEST_POSTGRES is unset, PostgreSQL tests are skipped,
// unless CI=true, when they fail. When it is set but PostgreSQL cannot be
// reached, they fail: they never skip silently.
package sqlstoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// EnvDSN names the environment variable holding the PostgreSQL test DSN.
const EnvDSN = "SCOPEFLAGS_TEST_POSTGRES"

// SQLite returns a store on a new SQLite file, closed at the end of the test.
func SQLite(t testing.TB) *sqlstore.Store {
	t.Helper()
	return SQLiteWith(t, sqlstore.Options{})
}

// SQLiteWith is SQLite with options, such as a larger value limit.
func SQLiteWith(t testing.TB, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	return openWith(t, filepath.Join(t.TempDir(), "rules.db"), opts)
}

// Postgres returns a store on a fresh PostgreSQL schema, dropped at the end
// of the test. It skips or fails as the package doc says.
func Postgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	dsn := PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", EnvDSN)
	}
	return open(t, dsn)
}

// Stores returns a SQLite store and, when configured, a PostgreSQL store.
func Stores(t testing.TB) []*sqlstore.Store {
	t.Helper()
	stores := []*sqlstore.Store{SQLite(t)}
	if dsn := PostgresDSN(t); dsn != "" {
		stores = append(stores, open(t, dsn))
	}
	return stores
}

func open(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	return openWith(t, dsn, sqlstore.Options{})
}

func openWith(t testing.TB, dsn string, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlstore.OpenWith(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// PostgresDSN creates a fresh schema and returns a DSN whose search_path
// selects it; the schema is dropped at the end of the test. It returns ""
// when SCOPEFLAGS_TEST_POSTGRES is unset outside CI.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s must be set in CI", EnvDSN)
		}
		return ""
	}
	db, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("postgres %s: %v", EnvDSN, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "sf_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("PostgreSQL at %s is unreachable or refused CREATE SCHEMA: %v", EnvDSN, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvDSN, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// HoldWriteLock holds what a write to the store at dsn (a SQLite path or a
// PostgreSQL DSN) must wait for, from another connection, until release is
// called: SQLite's write lock (BEGIN IMMEDIATE), or PostgreSQL's revision
// row (SELECT ... FOR UPDATE). The store's schema must exist.
func HoldWriteLock(t testing.TB, dsn string) (release func()) {
	t.Helper()
	ctx := context.Background()
	driver, name := "sqlite", "file:"+dsn
	if isPostgres(dsn) {
		driver, name = "postgres", dsn
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		t.Fatalf("hold the write lock: %v", err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("hold the write lock: %v", err)
	}
	lock, unlock := "BEGIN IMMEDIATE", "ROLLBACK"
	if driver == "postgres" {
		lock = "BEGIN; SELECT revision FROM feature_revision WHERE id = 1 FOR UPDATE"
	}
	if _, err := conn.ExecContext(ctx, lock); err != nil {
		t.Fatalf("hold the write lock: %v", err)
	}
	return func() {
		if _, err := conn.ExecContext(ctx, unlock); err != nil {
			t.Errorf("release the write lock: %v", err)
		}
		conn.Close()
		db.Close()
	}
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// DSNs returns, by dialect name, the DSN of a new SQLite file and, when
// configured, of a fresh PostgreSQL schema: for tests that open a store
// and also reach its database directly (RawDB).
func DSNs(t testing.TB) map[string]string {
	t.Helper()
	dsns := map[string]string{"sqlite": filepath.Join(t.TempDir(), "rules.db")}
	if dsn := PostgresDSN(t); dsn != "" {
		dsns["postgres"] = dsn
	}
	return dsns
}

// RawDB opens the database at dsn (as DSNs names it) without the store,
// to write what the store's checks would refuse; closed at the end of the
// test.
func RawDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	driver := "sqlite"
	if isPostgres(dsn) {
		driver = "postgres"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", driver, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
