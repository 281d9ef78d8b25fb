package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// found is the schema version the store recognises in a database a
// release of version v made: on SQLite, version 5 changed nothing, so a
// database of version 4 is one of version 5.
func found(dialect string, v int) int {
	if dialect == "sqlite" && v == 4 {
		return 5
	}
	return v
}

// TestMigrateShippedSchemas upgrades a database of every schema a release
// made, with data in it, on both dialects: its rules, declarations,
// changelog and keys survive, the database answers the same as one
// written by this version, and its tables are those of a new database.
func TestMigrateShippedSchemas(t *testing.T) {
	ctx := context.Background()
	for v := 1; v <= sqlstoretest.Releases; v++ {
		for dialect, dsn := range sqlstoretest.DSNs(t) {
			t.Run(fmt.Sprintf("v%d/%s", v, dialect), func(t *testing.T) {
				sqlstoretest.Release(t, dsn, v)
				var opts sqlstore.Options
				if found(dialect, v) < sqlstore.SchemaVersion() {
					_, err := sqlstore.Open(ctx, dsn)
					require.ErrorIs(t, err, sqlstore.ErrSchemaOld)
					opts.Migrate = true
				} // else: an unversioned database of the last release is adopted by any open
				st, err := sqlstore.OpenWith(ctx, dsn, opts)
				require.NoError(t, err)
				defer st.Close()

				// The rules, and the single query's answers.
				want := "ui.icing\tteam:qa\t10\tchocolate\nui.icing\tdefault\t0\tvanilla\nui.theme\tdefault\t1\tdark\n"
				if v >= 2 {
					want = "ui.icing\tteam:qa\t10\tchocolate\nui.icing\tdefault\t5\tlemon\n    when plan == \"pro\"\nui.icing\tdefault\t0\tvanilla\nui.theme\tdefault\t1\tdark\n"
				}
				cfg, err := st.Load(ctx)
				require.NoError(t, err)
				assert.Equal(t, want, rules.Format(cfg.Rules))
				assert.Equal(t, int64(2), cfg.Revision)
				fresh := sqlstoretest.SQLite(t)
				rs, _, err := rules.Parse(want, nil)
				require.NoError(t, err)
				_, err = fresh.ReplaceRules(ctx, rs, sqlstore.Change{Comment: "same", Actor: "t", BaseRevision: sqlstore.AnyRevision})
				require.NoError(t, err)
				for _, active := range [][]string{{"default"}, {"default", "team:qa"}, {"team:qa"}} {
					got, err := st.ResolveRules(ctx, active)
					require.NoError(t, err)
					same, err := fresh.ResolveRules(ctx, active)
					require.NoError(t, err)
					assert.Equal(t, same, got, "resolve %v", active)
				}

				// The declarations.
				if v >= 2 {
					require.Len(t, cfg.Flags, 2)
					assert.Equal(t, rules.Definition{Name: "ui.icing", Type: rules.String, Default: "none", External: true, Variants: []rules.Variant{}, Salt: "salt1"}, cfg.Flags[0])
					assert.Equal(t, "The colour scheme", cfg.Flags[1].Description)
					require.Len(t, cfg.Flags[1].Variants, 1)
				} else {
					assert.Empty(t, cfg.Flags)
				}

				// The changelog: the newest entry gets the texts a
				// release did not record yet.
				es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
				require.NoError(t, err)
				require.Len(t, es, 2)
				assert.Equal(t, []string{"second", "first"}, []string{es[0].Comment, es[1].Comment})
				assert.Equal(t, "+y", es[0].Diff)
				e1, err := st.ChangelogEntry(ctx, es[1].ID)
				require.NoError(t, err)
				e2, err := st.ChangelogEntry(ctx, es[0].ID)
				require.NoError(t, err)
				if v >= 3 {
					assert.Equal(t, "recorded rules\n", e2.Text.String)
					assert.Equal(t, "ui.theme\tdefault\t1\tdark\n", e1.Text.String)
				} else {
					assert.Equal(t, sql.NullString{String: want, Valid: true}, e2.Text)
					assert.False(t, e1.Text.Valid)
				}
				if v >= 4 {
					assert.Equal(t, "recorded declarations\n", e2.Declarations.String)
					assert.True(t, e1.Declarations.Valid)
				} else {
					assert.Equal(t, sql.NullString{String: sqlstore.DeclarationsText(cfg.Flags), Valid: true}, e2.Declarations)
					assert.False(t, e1.Declarations.Valid)
				}

				// The keys.
				if v >= 3 {
					k, err := st.Authenticate(ctx, sqlstoretest.ReleaseKey)
					require.NoError(t, err)
					assert.Equal(t, "deploy", k.Name)
					assert.Equal(t, "write", k.Scope)
				} else {
					_, err := st.Authenticate(ctx, sqlstoretest.ReleaseKey)
					assert.ErrorIs(t, err, sqlstore.ErrNotFound)
				}

				// The tables are a new database's, the versions recorded.
				assert.Equal(t, shape(t, dialect, sqlstoretest.RawDB(t, freshDSN(t, dialect))), shape(t, dialect, sqlstoretest.RawDB(t, dsn)))
				assert.Equal(t, versions(t, dsn), recorded(sqlstore.SchemaVersion()))

				// And it takes writes as a new one does.
				_, _, err = st.ReplaceText(ctx, want+"ui.new\tdefault\t1\ton\n  when plan == \"x\"\n", nil, sqlstore.Change{Comment: "after", Actor: "t", BaseRevision: 2})
				require.NoError(t, err)
			})
		}
	}
}

// freshDSN returns the DSN of a new database of dialect with this
// version's schema.
func freshDSN(t *testing.T, dialect string) string {
	t.Helper()
	dsn := sqlstoretest.DSNs(t)[dialect]
	st, err := sqlstore.Open(context.Background(), dsn)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	return dsn
}

// versions returns the versions recorded in schema_migrations.
func versions(t *testing.T, dsn string) []int {
	t.Helper()
	var vs []int
	rows, err := sqlstoretest.RawDB(t, dsn).Query(`SELECT version FROM schema_migrations ORDER BY version`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		vs = append(vs, v)
	}
	require.NoError(t, rows.Err())
	return vs
}

// recorded returns 1 to n.
func recorded(n int) []int {
	vs := make([]int, n)
	for i := range vs {
		vs[i] = i + 1
	}
	return vs
}

var schemaName = regexp.MustCompile(`\bsf_test_[0-9a-f]+\.`)

// shape describes the tables of db: columns, keys, indexes, foreign keys
// and (PostgreSQL) storage options, in an order that does not depend on
// how they were made.
func shape(t *testing.T, dialect string, db *sql.DB) string {
	t.Helper()
	var queries []string
	if dialect == "sqlite" {
		queries = []string{
			`SELECT m.name, c.cid, c.name, c.type, c."notnull", coalesce(c.dflt_value, ''), c.pk
			 FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`,
			`SELECT m.name, i."unique", i.origin, i.partial,
			   (SELECT group_concat(x.name || ' ' || x."desc", ',') FROM pragma_index_xinfo(i.name) x WHERE x.key = 1),
			   CASE WHEN i.origin = 'c' THEN i.name ELSE '' END
			 FROM sqlite_master m, pragma_index_list(m.name) i WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`,
			`SELECT m.name, f."table", f."from", f."to" FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`,
		}
	} else {
		queries = []string{
			`SELECT table_name, ordinal_position, column_name, data_type, is_nullable, coalesce(column_default, '')
			 FROM information_schema.columns WHERE table_schema = current_schema()`,
			`SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()`,
			`SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = current_schema()::regnamespace`,
			`SELECT relname, coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'`,
		}
	}
	var lines []string
	for _, q := range queries {
		rows, err := db.Query(q)
		require.NoError(t, err, q)
		cols, err := rows.Columns()
		require.NoError(t, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = string(b)
				}
			}
			lines = append(lines, schemaName.ReplaceAllString(strings.TrimSpace(fmt.Sprintln(vals...)), ""))
		}
		require.NoError(t, rows.Err())
		rows.Close()
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestMigrationsMakeSchemaSQL checks that the migrations make the tables
// schema.sql, the schema's reference, describes.
func TestMigrationsMakeSchemaSQL(t *testing.T) {
	for dialect, dsn := range sqlstoretest.DSNs(t) {
		t.Run(dialect, func(t *testing.T) {
			ref := scopeflags.Schema
			if dialect == "sqlite" {
				ref = scopeflags.SQLiteSchema()
			}
			raw := sqlstoretest.RawDB(t, dsn)
			_, err := raw.Exec(ref)
			require.NoError(t, err)
			_, err = raw.Exec(`DROP TABLE schema_migrations`)
			require.Error(t, err, "schema.sql does not create schema_migrations: the runner does")
			assert.Equal(t, shapeWithout(t, dialect, freshDSN(t, dialect), "schema_migrations"), shape(t, dialect, raw))
		})
	}
}

// shapeWithout is shape of the database at dsn without the lines of table.
func shapeWithout(t *testing.T, dialect, dsn, table string) string {
	var keep []string
	for _, l := range strings.Split(shape(t, dialect, sqlstoretest.RawDB(t, dsn)), "\n") {
		if l != table && !strings.HasPrefix(l, table+" ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestOpenRefusesOldSchema: opens that do not migrate (every command but
// serve and migrate) stop at an older schema, naming both versions, and
// change nothing; a dry run lists what migrating would apply.
func TestOpenRefusesOldSchema(t *testing.T) {
	ctx := context.Background()
	for v := 1; v <= sqlstoretest.Releases; v++ {
		for dialect, dsn := range sqlstoretest.DSNs(t) {
			t.Run(fmt.Sprintf("v%d/%s", v, dialect), func(t *testing.T) {
				if found(dialect, v) == sqlstore.SchemaVersion() {
					t.Skip("this shape is the current one on ", dialect)
				}
				sqlstoretest.Release(t, dsn, v)
				v := found(dialect, v) // the version the store finds
				before := shape(t, dialect, sqlstoretest.RawDB(t, dsn))
				_, err := sqlstore.Open(ctx, dsn)
				require.ErrorIs(t, err, sqlstore.ErrSchemaOld)
				assert.EqualError(t, err, fmt.Sprintf("sqlstore: schema version %d, this binary needs %d: run feature-info migrate", v, sqlstore.SchemaVersion()))

				up, err := sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{DryRun: true})
				require.NoError(t, err)
				assert.Equal(t, v, up.From)
				assert.Equal(t, v, up.To)
				assert.True(t, up.Adopted)
				assert.Equal(t, sqlstore.Migrations()[v:], up.Pending)
				assert.Equal(t, before, shape(t, dialect, sqlstoretest.RawDB(t, dsn)), "neither the open nor the dry run changed the database")

				up, err = sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{})
				require.NoError(t, err)
				assert.Equal(t, sqlstore.SchemaVersion(), up.To)
				assert.Equal(t, sqlstore.Migrations()[v:], up.Pending)
				st, err := sqlstore.Open(ctx, dsn)
				require.NoError(t, err)
				require.NoError(t, st.Close())
			})
		}
	}
}

// TestOpenRefusesNewerSchema: a binary refuses a schema newer than it
// knows, naming both versions and the migration that does not stay
// compatible, unless every newer migration recorded that it does.
func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	cur := sqlstore.SchemaVersion()
	tests := []struct {
		name   string
		future [][2]int // version, compatible_from
		err    string   // "" when it opens
	}{
		{"incompatible", [][2]int{{cur + 1, cur + 1}},
			fmt.Sprintf("sqlstore: schema version %d is newer than this binary's %d: migration %d (future) needs a binary of schema version %d or later", cur+1, cur, cur+1, cur+1)},
		{"compatible", [][2]int{{cur + 1, cur}}, ""},
		{"compatible then not", [][2]int{{cur + 1, cur}, {cur + 2, cur + 1}},
			fmt.Sprintf("sqlstore: schema version %d is newer than this binary's %d: migration %d (future) needs a binary of schema version %d or later", cur+2, cur, cur+2, cur+1)},
		{"compatible twice", [][2]int{{cur + 1, cur}, {cur + 2, cur - 1}}, ""},
	}
	for _, tt := range tests {
		for dialect, dsn := range sqlstoretest.DSNs(t) {
			t.Run(tt.name+"/"+dialect, func(t *testing.T) {
				freshAt(t, dsn)
				raw := sqlstoretest.RawDB(t, dsn)
				for _, f := range tt.future {
					_, err := raw.Exec(fmt.Sprintf(`INSERT INTO schema_migrations (version, name, compatible_from) VALUES (%d, 'future', %d)`, f[0], f[1]))
					require.NoError(t, err)
				}
				for _, migrate := range []bool{false, true} {
					st, err := sqlstore.OpenWith(ctx, dsn, sqlstore.Options{Migrate: migrate})
					if tt.err != "" {
						require.ErrorIs(t, err, sqlstore.ErrSchemaNew)
						assert.EqualError(t, err, tt.err)
						continue
					}
					require.NoError(t, err)
					_, _, err = st.LoadRules(ctx)
					assert.NoError(t, err)
					require.NoError(t, st.Close())
				}
				up, err := sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{DryRun: true})
				if tt.err != "" {
					require.ErrorIs(t, err, sqlstore.ErrSchemaNew)
				} else {
					require.NoError(t, err)
					assert.Empty(t, up.Pending)
				}
				assert.Len(t, versions(t, dsn), cur+len(tt.future), "nothing recorded or removed")
			})
		}
	}
}

// freshAt creates this version's schema at dsn.
func freshAt(t *testing.T, dsn string) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), dsn)
	require.NoError(t, err)
	require.NoError(t, st.Close())
}

// TestConcurrentOpensMigrateOnce: ten servers starting at once on an empty
// database create its schema once, without errors.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	ctx := context.Background()
	for dialect, dsn := range sqlstoretest.DSNs(t) {
		t.Run(dialect, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make([]error, 10)
			for i := range errs {
				wg.Go(func() {
					st, err := sqlstore.OpenWith(ctx, dsn, sqlstore.Options{Migrate: i%2 == 0})
					if err == nil {
						_, _, err = st.LoadRules(ctx)
						st.Close()
					}
					errs[i] = err
				})
			}
			wg.Wait()
			for i, err := range errs {
				assert.NoError(t, err, "open %d", i)
			}
			assert.Equal(t, recorded(sqlstore.SchemaVersion()), versions(t, dsn))
			var revisions int
			require.NoError(t, sqlstoretest.RawDB(t, dsn).QueryRow(`SELECT count(*) FROM feature_revision`).Scan(&revisions))
			assert.Equal(t, 1, revisions)
		})
	}
}

// TestMigrationFiles: both dialects have the same migrations (numbers,
// names and compatibility), each newer than the first release's.
func TestMigrationFiles(t *testing.T) {
	ms := sqlstore.Migrations()
	require.Len(t, ms, sqlstore.SchemaVersion())
	for _, dir := range []string{"postgres", "sqlite"} {
		files, err := filepath.Glob(filepath.Join("migrations", dir, "*.sql"))
		require.NoError(t, err)
		require.Len(t, files, len(ms), dir)
		for i, f := range files {
			assert.Equal(t, fmt.Sprintf("%04d_%s.sql", ms[i].Version, ms[i].Name), filepath.Base(f))
		}
	}
}

// TestMigrateTo: a database migrated to an older version (as a versioned
// release leaves it) with data written then is upgraded the rest of the
// way, recorded step by step.
func TestMigrateTo(t *testing.T) {
	ctx := context.Background()
	for dialect, dsn := range sqlstoretest.DSNs(t) {
		t.Run(dialect, func(t *testing.T) {
			up, err := sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{To: 3})
			require.NoError(t, err)
			assert.Equal(t, sqlstore.Upgrade{From: 0, To: 3, Pending: sqlstore.Migrations()[:3]}, up)
			assert.Equal(t, recorded(3), versions(t, dsn))
			_, err = sqlstoretest.RawDB(t, dsn).Exec(`
INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES ('a', 'default', 1, 'x', 'plan == "pro"');
INSERT INTO feature_flags VALUES ('a', 'string', 'none', '', FALSE, '[]', '', '', '2026-01-01 00:00:00');
INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision, rules_text) VALUES ('2026-01-01 00:00:00', 'a', 'first', '+x', 1, 'text');
UPDATE feature_revision SET revision = 1;`)
			require.NoError(t, err)

			_, err = sqlstore.Open(ctx, dsn)
			require.EqualError(t, err, fmt.Sprintf("sqlstore: schema version 3, this binary needs %d: run feature-info migrate", sqlstore.SchemaVersion()))
			up, err = sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{})
			require.NoError(t, err)
			assert.Equal(t, sqlstore.Upgrade{From: 3, To: sqlstore.SchemaVersion(), Pending: sqlstore.Migrations()[3:]}, up)
			st, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			defer st.Close()
			e, err := st.ChangelogEntry(ctx, 1)
			require.NoError(t, err)
			assert.Equal(t, "text", e.Text.String)
			defs, err := st.Definitions(ctx)
			require.NoError(t, err)
			assert.Equal(t, sqlstore.DeclarationsText(defs), e.Declarations.String, "migration 4 gave the newest entry the declarations")
			assert.Equal(t, shape(t, dialect, sqlstoretest.RawDB(t, freshDSN(t, dialect))), shape(t, dialect, sqlstoretest.RawDB(t, dsn)))
		})
	}
}
