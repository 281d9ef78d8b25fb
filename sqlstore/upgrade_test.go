package sqlstore_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// oldSchema is feature_rules as the first release made it, before rules had
// conditions.
const oldSchema = `
CREATE TABLE feature_rules (
    flag TEXT NOT NULL, scope TEXT NOT NULL, priority INTEGER NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (flag, scope), UNIQUE (flag, priority));
CREATE INDEX feature_rules_scope_idx ON feature_rules (scope, flag, priority DESC);
INSERT INTO feature_rules VALUES ('ui.icing', 'default', 0, 'vanilla'), ('ui.icing', 'team:qa', 10, 'chocolate');
CREATE TABLE feature_changelog (
    id ID_TYPE PRIMARY KEY, changed_at TIMESTAMP NOT NULL, actor TEXT NOT NULL,
    comment TEXT NOT NULL, diff TEXT NOT NULL, revision BIGINT NOT NULL);
INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision)
    VALUES ('2026-01-01 00:00:00', 'a', 'first', '+x', 1), ('2026-01-02 00:00:00', 'a', 'second', '+y', 2);
CREATE TABLE feature_revision (id INTEGER PRIMARY KEY CHECK (id = 1), revision BIGINT NOT NULL);
INSERT INTO feature_revision VALUES (1, 2);
`

// TestUpgradeKeepsRules opens a database made before conditions existed:
// the rules survive and conditional rules can be saved.
func TestUpgradeKeepsRules(t *testing.T) {
	dsns := sqlstoretest.DSNs(t)
	ctx := context.Background()
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			driver, source, idType := "sqlite", dsn, "INTEGER"
			if name == "postgres" {
				driver, idType = "postgres", "BIGSERIAL"
			}
			raw, err := sql.Open(driver, source)
			require.NoError(t, err)
			_, err = raw.ExecContext(ctx, strings.Replace(oldSchema, "ID_TYPE", idType, 1))
			require.NoError(t, err)
			require.NoError(t, raw.Close())

			for range 2 { // the upgrade runs once; a second open is a no-op
				st, err := sqlstore.OpenWith(ctx, dsn, sqlstore.Options{Migrate: true})
				require.NoError(t, err)
				rs, _, err := st.LoadRules(ctx)
				require.NoError(t, err)
				assert.Equal(t, "ui.icing\tteam:qa\t10\tchocolate\nui.icing\tdefault\t0\tvanilla\n", rules.Format(rs))
				require.NoError(t, st.Close())
			}
			st, err := sqlstore.OpenWith(ctx, dsn, sqlstore.Options{Migrate: true})
			require.NoError(t, err)
			defer st.Close()
			// The newest changelog entry gets the current rules as its
			// text, so it can be reverted to; older ones stay unrecorded.
			e2, err := st.ChangelogEntry(ctx, 2)
			require.NoError(t, err)
			assert.Equal(t, sql.NullString{String: "ui.icing\tteam:qa\t10\tchocolate\nui.icing\tdefault\t0\tvanilla\n", Valid: true}, e2.Text)
			e1, err := st.ChangelogEntry(ctx, 1)
			require.NoError(t, err)
			assert.False(t, e1.Text.Valid)
			rs, _, err := rules.Parse("ui.icing default 2 a\n  when plan == \"x\"\nui.icing default 1 b\n", nil)
			require.NoError(t, err)
			_, err = st.ReplaceRules(ctx, rs, sqlstore.Change{Comment: "conditions", Actor: "t", BaseRevision: sqlstore.AnyRevision})
			require.NoError(t, err)
			got, _, err := st.LoadRules(ctx)
			require.NoError(t, err)
			assert.Equal(t, rs[0].Condition, got[0].Condition)
		})
	}
}

func TestPushDefinitions(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		v1 := []rules.Definition{
			{Name: "a", Type: rules.Boolean, Default: "false", Description: "A"},
			{Name: "b", Type: rules.String, Default: "x"},
		}
		rep, err := st.PushDefinitions(ctx, v1, change("declare a and b", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		assert.Equal(t, []string{"a", "b"}, rep.Created)
		assert.True(t, rep.Written)
		rev := rep.Revision

		_, err = st.ReplaceRules(ctx, []rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: "yes"}}, change("bad", rev))
		require.ErrorIs(t, err, sqlstore.ErrInvalid)
		assert.ErrorContains(t, err, `rule 1 (a default 1): bad value for boolean flag "a": "yes" is not a boolean`)
		e, err := st.ReplaceRules(ctx, []rules.Rule{{Flag: "b", Scope: "default", Priority: 1, Value: "words"}}, change("ok", rev))
		require.NoError(t, err)

		// b becomes an int: its stored value would break; a is dropped.
		v2 := []rules.Definition{{Name: "b", Type: rules.Int, Default: "0"}, {Name: "c", Type: rules.Float, Default: "1.5"}}
		dry, err := st.PushDefinitions(ctx, v2, sqlstore.Change{BaseRevision: sqlstore.AnyRevision, DryRun: true}, sqlstore.PushOptions{})
		require.ErrorIs(t, err, sqlstore.ErrIncompatible, "a dry run says the push would be refused")
		assert.Equal(t, []string{"c"}, dry.Created)
		assert.Equal(t, []sqlstore.FlagUpdate{{Name: "b", Changes: []string{"type: string -> int", `default: "x" -> "0"`}}}, dry.Updated)
		assert.Equal(t, []sqlstore.Incompatible{{Line: 1, Flag: "b", Scope: "default", Priority: 1, Value: "words", Error: `"words" is not an int`}}, dry.Incompatible)
		assert.Equal(t, []string{"a"}, dry.Orphans)
		assert.False(t, dry.Written)
		cur, err := st.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, e.Revision, cur, "a dry run does not bump the revision")

		refused, err := st.PushDefinitions(ctx, v2, change("strict", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.ErrorIs(t, err, sqlstore.ErrIncompatible, "strict by default")
		assert.False(t, refused.Written)
		assert.Len(t, refused.Incompatible, 1)
		defs, err := st.Definitions(ctx)
		require.NoError(t, err)
		require.Len(t, defs, 2)
		assert.Equal(t, rules.String, defs[1].Type, "a refused strict push writes nothing")

		rep, err = st.PushDefinitions(ctx, v2, change("b becomes an int", sqlstore.AnyRevision), sqlstore.PushOptions{Force: true})
		require.NoError(t, err)
		assert.True(t, rep.Written)
		cfg, err := st.Load(ctx)
		require.NoError(t, err)
		assert.Equal(t, rep.Revision, cfg.Revision)
		assert.Len(t, cfg.Flags, 3, "orphans are kept")
		_, err = st.DeleteDefinitions(ctx, []string{"a"}, change("a is gone", sqlstore.AnyRevision))
		require.NoError(t, err)
		defs, err = st.Definitions(ctx)
		require.NoError(t, err)
		assert.Len(t, defs, 2)

		_, err = st.PushDefinitions(ctx, []rules.Definition{{Name: "d", Type: "nope"}}, change("bad", sqlstore.AnyRevision), sqlstore.PushOptions{})
		assert.ErrorIs(t, err, sqlstore.ErrInvalid)
	})
}
