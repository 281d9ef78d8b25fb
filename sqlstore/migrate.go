package sqlstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/scopeflags/scopeflags/rules"
)

// Sentinel errors of the schema's version.
var (
	// ErrSchemaOld: the database's schema is older than this binary's and
	// the store was opened without Options.Migrate. Nothing was changed;
	// Migrate (feature-info migrate) or a migrating Open upgrades it.
	ErrSchemaOld = errors.New("sqlstore: schema older than this binary")
	// ErrSchemaNew: the database's schema is newer than this binary knows
	// and a newer migration did not record that binaries of this version
	// can still run on it (Migration.CompatibleFrom).
	ErrSchemaNew = errors.New("sqlstore: schema newer than this binary")
)

// schemaError is a schema version the store refused; it matches
// ErrSchemaOld or ErrSchemaNew.
type schemaError struct {
	found, known int
	// blocker is the newer migration that does not stay compatible
	// (ErrSchemaNew only).
	blocker Migration
}

func (e *schemaError) Error() string {
	if e.found < e.known {
		return fmt.Sprintf("sqlstore: schema version %d, this binary needs %d: run feature-info migrate", e.found, e.known)
	}
	return fmt.Sprintf("sqlstore: schema version %d is newer than this binary's %d: migration %d (%s) needs a binary of schema version %d or later",
		e.found, e.known, e.blocker.Version, e.blocker.Name, e.blocker.CompatibleFrom)
}

func (e *schemaError) Unwrap() error {
	if e.found < e.known {
		return ErrSchemaOld
	}
	return ErrSchemaNew
}

// Migration is one numbered step of the schema. Both dialects have the
// same migrations; each is a file of SQL per dialect in migrations/
// (NNNN_name.sql), possibly followed by a step in Go.
type Migration struct {
	// Version numbers the migrations 1, 2, ... with no gaps. A database's
	// schema version is the newest migration recorded in its
	// schema_migrations table; SchemaVersion is this binary's.
	Version int
	// Name says what it does: the file name without number and ".sql".
	Name string
	// CompatibleFrom is the lowest schema version a binary may know and
	// still run on the schema after this migration: Version (the
	// default) when no older binary can, lower when the migration only
	// adds what older binaries do not use (expand; see
	// docs/migrations.md). Written in the file as a line
	// "-- compatible-from: N" and recorded with the migration, so that
	// older binaries read it.
	CompatibleFrom int
}

// migrationFiles are the migrations, a directory per dialect.
//
//go:embed migrations
var migrationFiles embed.FS

// migrationSteps are migrations that need logic after their SQL, by
// version. They read and write only what their version's schema had:
// later versions may change the code that reads today's tables.
var migrationSteps = map[int]func(context.Context, *Store, *sqlx.Tx) error{
	3: fillRulesText,
	4: fillDeclarationsText,
	6: fillChangelogFlags,
}

// migration is a Migration with its SQL and step.
type migration struct {
	Migration
	sql  string
	step func(context.Context, *Store, *sqlx.Tx) error
}

var loadOnce = sync.OnceValues(func() (map[string][]migration, error) {
	out := map[string][]migration{}
	for _, dir := range []string{"postgres", "sqlite"} {
		ms, err := readMigrations(migrationFiles, path.Join("migrations", dir))
		if err != nil {
			return nil, err
		}
		out[dir] = ms
	}
	pg, lite := out["postgres"], out["sqlite"]
	for i := range max(len(pg), len(lite)) {
		if i >= len(pg) || i >= len(lite) || pg[i].Migration != lite[i].Migration {
			return nil, fmt.Errorf("sqlstore: migrations/postgres and migrations/sqlite differ at version %d: each migration needs a file of the same name, compatible-from included, in both", i+1)
		}
	}
	return out, nil
})

// readMigrations reads the migrations in dir of fsys, checking that they
// are numbered 1, 2, ... with no gaps.
func readMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("sqlstore: %s/%s: want a name NNNN_name.sql", dir, e.Name())
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("sqlstore: %s/%s: migration %d, want %d (numbers have no gaps)", dir, e.Name(), v, len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		m := migration{Migration: Migration{Version: v, Name: name, CompatibleFrom: v}, sql: string(b), step: migrationSteps[v]}
		for i, line := range strings.Split(m.sql, "\n") {
			if rest, ok := strings.CutPrefix(line, "-- compatible-from:"); ok {
				c, err := strconv.Atoi(strings.TrimSpace(rest))
				if err != nil || c < 1 || c > v {
					return nil, fmt.Errorf("sqlstore: %s/%s:%d: compatible-from %q: want a version from 1 to %d", dir, e.Name(), i+1, strings.TrimSpace(rest), v)
				}
				m.CompatibleFrom = c
			}
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("sqlstore: %s: no migrations", dir)
	}
	return ms, nil
}

// migrations returns the migrations of the store's dialect.
func (s *Store) migrations() ([]migration, error) {
	all, err := loadOnce()
	if err != nil {
		return nil, err
	}
	dir := "sqlite"
	if s.dialect == PostgreSQL {
		dir = "postgres"
	}
	return all[dir], nil
}

// Migrations returns this binary's migrations, oldest first (the same on
// both dialects).
func Migrations() []Migration {
	all, err := loadOnce()
	if err != nil {
		panic(err) // the embedded files are checked by the tests
	}
	out := make([]Migration, len(all["postgres"]))
	for i, m := range all["postgres"] {
		out[i] = m.Migration
	}
	return out
}

// SchemaVersion is the schema version this binary creates and needs: the
// number of its newest migration.
func SchemaVersion() int { return len(Migrations()) }

// MigrateOptions control Migrate.
type MigrateOptions struct {
	// DryRun finds the pending migrations and applies none.
	DryRun bool
	// To, when positive, stops at that version: migrations after it are
	// neither pending nor applied. Tests use it to write data at an
	// older version before upgrading.
	To int
}

// Upgrade is what Migrate found and did.
type Upgrade struct {
	// From is the database's schema version before: 0 for an empty
	// database.
	From int
	// To is its version after: From on a dry run or when there was
	// nothing to apply (also when From is newer than SchemaVersion).
	To int
	// Pending are the migrations the database lacked, oldest first;
	// applied unless on a dry run.
	Pending []Migration
	// Adopted says the database was made before versions were recorded:
	// From was recognised from its tables (and recorded, unless on a dry
	// run).
	Adopted bool
}

// Migrate brings the schema of the database at dsn (as Open takes it) to
// SchemaVersion, keeping its data: every pending migration in one
// transaction, which on PostgreSQL holds an advisory lock, so servers
// starting at once migrate once. A database made before versions were
// recorded is recognised from its tables. A schema newer than this binary
// knows is left alone; ErrSchemaNew unless it stays compatible.
func Migrate(ctx context.Context, dsn string, opts MigrateOptions) (Upgrade, error) {
	s, err := open(ctx, dsn, Options{})
	if err != nil {
		return Upgrade{}, err
	}
	defer s.Close()
	mode := migrateApply
	if opts.DryRun {
		mode = migrateDryRun
	}
	return s.migrate(ctx, mode, opts.To)
}

// migrateMode says what migrate may do.
type migrateMode int

const (
	migrateCreate migrateMode = iota // create an empty database's schema; refuse an older one
	migrateApply                     // apply every pending migration
	migrateDryRun                    // find the pending migrations, apply none
)

// migrateLockID is the key of PostgreSQL's advisory lock held while the
// schema is checked and changed: the one releases before versioned
// migrations took when applying schema.sql, so they and these wait for
// each other.
const migrateLockID = 7305141130

// migrate checks the schema and does what mode allows, applying
// migrations up to version to (all when 0).
func (s *Store) migrate(ctx context.Context, mode migrateMode, to int) (Upgrade, error) {
	ms, err := s.migrations()
	if err != nil {
		return Upgrade{}, err
	}
	latest := ms[len(ms)-1].Migration
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Upgrade{}, fmt.Errorf("sqlstore: migrate: %w", translate(err))
	}
	defer tx.Rollback()
	if s.dialect == PostgreSQL {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, migrateLockID)); err != nil {
			return Upgrade{}, fmt.Errorf("sqlstore: migrate: %w", translate(err))
		}
	}
	applied, adopted, err := s.appliedMigrations(ctx, tx, ms)
	if err != nil {
		return Upgrade{}, fmt.Errorf("sqlstore: migrate: %w", translate(err))
	}
	up := Upgrade{Adopted: adopted}
	if len(applied) > 0 {
		up.From = applied[len(applied)-1].Version
	}
	up.To = up.From
	if up.From > latest.Version {
		for _, m := range applied {
			if m.Version > latest.Version && m.CompatibleFrom > latest.Version {
				return up, &schemaError{found: up.From, known: latest.Version, blocker: m}
			}
		}
	}
	for _, m := range ms {
		if m.Version > up.From && (to <= 0 || m.Version <= to) {
			up.Pending = append(up.Pending, m.Migration)
		}
	}
	switch {
	case mode == migrateDryRun:
		return up, nil
	case len(up.Pending) > 0 && up.From > 0 && mode == migrateCreate:
		return up, &schemaError{found: up.From, known: latest.Version}
	}
	for _, p := range up.Pending {
		m := ms[p.Version-1] // numbered 1, 2, ... (readMigrations)
		if err := s.apply(ctx, tx, m); err != nil {
			return up, err
		}
		up.To = m.Version
	}
	if err := tx.Commit(); err != nil {
		return up, fmt.Errorf("sqlstore: migrate: %w", translate(err))
	}
	return up, nil
}

// apply runs one migration in tx and records it.
func (s *Store) apply(ctx context.Context, tx *sqlx.Tx, m migration) error {
	if strings.TrimSpace(stripComments(m.sql)) != "" {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("sqlstore: migration %d (%s): %w", m.Version, m.Name, translate(err))
		}
	}
	if m.step != nil {
		if err := m.step(ctx, s, tx); err != nil {
			return fmt.Errorf("sqlstore: migration %d (%s): %w", m.Version, m.Name, translate(err))
		}
	}
	if err := s.record(ctx, tx, m.Migration); err != nil {
		return fmt.Errorf("sqlstore: migration %d (%s): record: %w", m.Version, m.Name, translate(err))
	}
	return nil
}

// stripComments drops the "--" comment lines of a migration.
func stripComments(sql string) string {
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (s *Store) record(ctx context.Context, tx *sqlx.Tx, m Migration) error {
	_, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, name, compatible_from) VALUES (?, ?, ?)`),
		m.Version, m.Name, m.CompatibleFrom)
	return err
}

// appliedMigrations returns the migrations schema_migrations records,
// oldest first. A database without the table gets it, recording the
// version its tables show (adopted).
func (s *Store) appliedMigrations(ctx context.Context, tx *sqlx.Tx, ms []migration) ([]Migration, bool, error) {
	exists, err := s.hasTable(ctx, tx, "schema_migrations")
	if err != nil {
		return nil, false, err
	}
	adopted := false
	if !exists {
		legacy, err := s.legacyVersion(ctx, tx)
		if err != nil {
			return nil, false, err
		}
		ts := "TIMESTAMPTZ"
		if s.dialect == SQLite {
			ts = "TIMESTAMP"
		}
		// applied_at is when the migration was applied, or adopted.
		if _, err := tx.ExecContext(ctx, `CREATE TABLE schema_migrations (
    version         INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    compatible_from INTEGER NOT NULL,
    applied_at      `+ts+` NOT NULL DEFAULT CURRENT_TIMESTAMP
)`); err != nil {
			return nil, false, err
		}
		for _, m := range ms[:legacy] {
			if err := s.record(ctx, tx, m.Migration); err != nil {
				return nil, false, err
			}
		}
		adopted = legacy > 0
	}
	var applied []Migration
	err = tx.SelectContext(ctx, &applied, `SELECT version AS "version", name AS "name", compatible_from AS "compatiblefrom" FROM schema_migrations ORDER BY version`)
	return applied, adopted, err
}

// legacyVersion recognises the schema version of a database made before
// versions were recorded (each release applied its whole schema and
// upgraded older shapes on open, so every such database has one of the
// shapes of migrations 1 to 5; versioned migrations came before 6): 0
// when it has no tables.
func (s *Store) legacyVersion(ctx context.Context, tx *sqlx.Tx) (int, error) {
	if ok, err := s.hasTable(ctx, tx, "feature_rules"); err != nil || !ok {
		return 0, err
	}
	for _, c := range []struct {
		version       int
		table, column string
	}{
		{2, "feature_rules", "condition"},
		{3, "feature_changelog", "rules_text"},
		{4, "feature_changelog", "declarations_text"},
	} {
		if ok, err := s.hasColumn(ctx, tx, c.table, c.column); err != nil || !ok {
			return c.version - 1, err
		}
	}
	if s.dialect == PostgreSQL {
		var set bool
		err := tx.GetContext(ctx, &set, `SELECT coalesce('fillfactor=70' = ANY(reloptions), false) FROM pg_class WHERE oid = 'feature_rules'::regclass`)
		if err != nil || !set {
			return 4, err
		}
	}
	return 5, nil
}

// hasTable reports whether the database (PostgreSQL: the current schema)
// has table.
func (s *Store) hasTable(ctx context.Context, tx *sqlx.Tx, table string) (bool, error) {
	var n int
	q := `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1`
	if s.dialect == SQLite {
		q = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	}
	err := tx.GetContext(ctx, &n, q, table)
	return n > 0, err
}

// hasColumn reports whether table has column.
func (s *Store) hasColumn(ctx context.Context, tx *sqlx.Tx, table, column string) (bool, error) {
	var n int
	q := `SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`
	if s.dialect == SQLite {
		q = `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`
	}
	err := tx.GetContext(ctx, &n, q, table, column)
	return n > 0, err
}

// fillRulesText (migration 3) gives the newest changelog entry the
// current rules as its text, so it can be reverted to; older entries keep
// NULL.
func fillRulesText(ctx context.Context, s *Store, tx *sqlx.Tx) error {
	var cur []rules.Rule
	if err := tx.SelectContext(ctx, &cur, `SELECT flag, scope, priority, value, condition FROM feature_rules`); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, s.rebind(`UPDATE feature_changelog SET rules_text = ? WHERE id = (SELECT MAX(id) FROM feature_changelog)`), rules.Format(cur))
	return err
}

// fillDeclarationsText (migration 4) gives the newest changelog entry the
// current declarations (the best record there is: pushes were not audited
// before), so reverting to it keeps them; older entries keep NULL, and
// reverting to them restores only the rules.
func fillDeclarationsText(ctx context.Context, s *Store, tx *sqlx.Tx) error {
	var rows []flagRow
	if err := tx.SelectContext(ctx, &rows, `SELECT name, type, default_value, description, external, variants, json_schema, salt, updated_at FROM feature_flags ORDER BY name`); err != nil {
		return err
	}
	defs := make([]rules.Definition, 0, len(rows))
	for _, r := range rows {
		d, err := r.definition()
		if err != nil {
			return err
		}
		defs = append(defs, d)
	}
	_, err := tx.ExecContext(ctx, s.rebind(`UPDATE feature_changelog SET declarations_text = ? WHERE id = (SELECT MAX(id) FROM feature_changelog)`), DeclarationsText(defs))
	return err
}
