package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// requireGapless checks the changelog's revisions are exactly 1..N, N
// being the store's revision.
func requireGapless(t *testing.T, st *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	rev, err := st.Revision(ctx)
	require.NoError(t, err)
	es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{Limit: 1000})
	require.NoError(t, err)
	got := make([]int64, len(es))
	want := make([]int64, len(es))
	for i, e := range es {
		got[len(es)-1-i] = e.Revision
		want[i] = int64(i + 1)
	}
	require.Equal(t, want, got, "changelog revisions")
	require.Equal(t, int64(len(es)), rev, "the store's revision is the number of entries")
}

var (
	declsV1 = []rules.Definition{
		{Name: "checkout.express", Type: rules.Boolean, Default: "false", Description: "Express checkout."},
		{Name: "ui.theme", Type: rules.String, Default: "light", Variants: []rules.Variant{{Name: "dark", Value: "#111"}, {Name: "light", Value: "#fff"}}},
	}
	// declsBad is a bad push: express becomes an int, theme external, and
	// a new flag appears.
	declsBad = []rules.Definition{
		{Name: "checkout.express", Type: rules.Int, Default: "0", Description: "Express checkout."},
		{Name: "jobs.retries", Type: rules.Int, Default: "3"},
		{Name: "ui.theme", Type: rules.String, Default: "light", External: true, Variants: []rules.Variant{{Name: "dark", Value: "#111"}, {Name: "light", Value: "#fff"}}},
	}
)

// TestEveryChangeIsAudited performs rule saves, pushes, a dry-run push, a
// push with nothing to write, reverts and a removal of declarations, and
// checks after each that the changelog's revisions are exactly 1..N.
func TestEveryChangeIsAudited(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		save := func(text, comment string) sqlstore.Entry {
			t.Helper()
			e, err := st.ReplaceRules(ctx, parse(t, text), change(comment, sqlstore.AnyRevision))
			require.NoError(t, err)
			requireGapless(t, st)
			return e
		}
		push := func(defs []rules.Definition, comment string) sqlstore.PushReport {
			t.Helper()
			rep, err := st.PushDefinitions(ctx, defs, change(comment, sqlstore.AnyRevision), sqlstore.PushOptions{Force: true})
			require.NoError(t, err)
			requireGapless(t, st)
			return rep
		}
		e1 := save("ui.theme default 1 dark\n", "dark for everyone")
		p1 := push(declsV1, "declare express and theme")
		require.True(t, p1.Written)
		assert.Equal(t, int64(2), p1.Revision)
		pushed, err := st.ChangelogEntry(ctx, p1.ChangelogID)
		require.NoError(t, err)
		assert.Equal(t, "declare express and theme", pushed.Comment)
		assert.Equal(t, "tester", pushed.Actor)
		assert.Equal(t, int64(2), pushed.Revision)
		assert.Equal(t, "--- declarations\n+++ declarations\n@@ -0,0 +1,2 @@\n"+
			`+{"name":"checkout.express","type":"boolean","default":false,"description":"Express checkout."}`+"\n"+
			`+{"name":"ui.theme","type":"string","default":"light","variants":{"dark":"#111","light":"#fff"}}`+"\n", pushed.Diff)
		assert.Equal(t, "ui.theme\tdefault\t1\tdark\n", pushed.Text.String, "a push records the rules too")

		e3 := save("checkout.express default 1 true\nui.theme default 1 dark\n", "express on")
		dry, err := st.PushDefinitions(ctx, declsBad, sqlstore.Change{BaseRevision: sqlstore.AnyRevision, DryRun: true}, sqlstore.PushOptions{})
		require.ErrorIs(t, err, sqlstore.ErrIncompatible)
		assert.False(t, dry.Written)
		assert.Equal(t, e3.Revision, dry.Revision)
		assert.Len(t, dry.Incompatible, 1)
		requireGapless(t, st)
		same := push(declsV1, "nothing new")
		assert.False(t, same.Written, "a push that changes nothing writes nothing")
		assert.Equal(t, e3.Revision, same.Revision)

		bad := push(declsBad, "retries, int express") // forced: written
		assert.Equal(t, []string{"jobs.retries"}, bad.Created)
		entry, err := st.ChangelogEntry(ctx, bad.ChangelogID)
		require.NoError(t, err)
		assert.Contains(t, entry.Diff, "\n"+`-{"name":"checkout.express","type":"boolean","default":false,"description":"Express checkout."}`+"\n")
		assert.Contains(t, entry.Diff, "\n"+`+{"name":"checkout.express","type":"int","default":0,"description":"Express checkout."}`+"\n")

		// Reverting to the entry before the bad push restores the
		// declarations as they were after it: express a boolean again,
		// theme not external, jobs.retries no longer declared.
		rv, err := st.Revert(ctx, e3.ID, change("the int push broke express", bad.Revision))
		require.NoError(t, err)
		requireGapless(t, st)
		assert.Equal(t, fmt.Sprintf("Revert to the rules after change #%d (revision %d): the int push broke express", e3.ID, e3.Revision), rv.Comment)
		defs, err := st.Definitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, sqlstore.DeclarationsText(declsV1), sqlstore.DeclarationsText(defs))
		cfg, err := st.Load(ctx)
		require.NoError(t, err)
		assert.Equal(t, "checkout.express\tdefault\t1\ttrue\nui.theme\tdefault\t1\tdark\n", rules.Format(cfg.Rules))
		assert.Equal(t, rv.Revision, cfg.Revision)

		// Reverting to the first save restores its rules and the
		// declarations of that moment: none.
		_, err = st.Revert(ctx, e1.ID, change("start over", sqlstore.AnyRevision))
		require.NoError(t, err)
		requireGapless(t, st)
		cfg, err = st.Load(ctx)
		require.NoError(t, err)
		assert.Empty(t, cfg.Flags)
		assert.Equal(t, "ui.theme\tdefault\t1\tdark\n", rules.Format(cfg.Rules))

		// And reverting to the push brings its declarations back.
		_, err = st.Revert(ctx, p1.ChangelogID, change("declarations back", sqlstore.AnyRevision))
		require.NoError(t, err)
		requireGapless(t, st)
		defs, err = st.Definitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, sqlstore.DeclarationsText(declsV1), sqlstore.DeclarationsText(defs))

		de, err := st.DeleteDefinitions(ctx, []string{"ui.theme", "no.such"}, change("theme undeclared", sqlstore.AnyRevision))
		require.NoError(t, err)
		assert.Contains(t, de.Diff, `-{"name":"ui.theme"`)
		requireGapless(t, st)
		none, err := st.DeleteDefinitions(ctx, []string{"no.such"}, change("nothing", sqlstore.AnyRevision))
		require.NoError(t, err)
		assert.Zero(t, none.ID, "removing nothing writes nothing")
		requireGapless(t, st)
	})
}

// TestRevertRefusals: a refused revert writes nothing.
func TestRevertRefusals(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		e1, err := st.ReplaceRules(ctx, parse(t, "checkout.express default 1 yes\n"), change("yes", 0))
		require.NoError(t, err)
		// Forced: the stored "yes" does not fit, and is written anyway.
		p, err := st.PushDefinitions(ctx, declsV1, change("declare", 1), sqlstore.PushOptions{Force: true})
		require.NoError(t, err)
		require.Len(t, p.Incompatible, 1)
		e3, err := st.ReplaceRules(ctx, parse(t, "checkout.express default 1 true\n"), change("fix", 2))
		require.NoError(t, err)
		snapshot := func() string {
			cfg, err := st.Load(ctx)
			require.NoError(t, err)
			return fmt.Sprintf("%d\n%s%s", cfg.Revision, rules.Format(cfg.Rules), sqlstore.DeclarationsText(cfg.Flags))
		}
		want := snapshot()
		tests := []struct {
			name string
			id   int64
			c    sqlstore.Change
			is   error
			msg  string
		}{
			{"stale base", e1.ID, change("back", 2), sqlstore.ErrConflict, "the rules changed since revision 2"},
			{"no such entry", 99, change("back", 3), sqlstore.ErrNotFound, "changelog entry 99"},
			{"no comment", e1.ID, change(" \n", 3), sqlstore.ErrRequired, "sqlstore: invalid input: comment: a comment is required"},
			{"bad comment", e1.ID, change("back\a", 3), sqlstore.ErrNotText, "sqlstore: invalid input: comment: control character U+0007 at byte 4"},
			{"rules no longer fit", p.ChangelogID, change("back", 3), sqlstore.ErrInvalid, `bad value for boolean flag "checkout.express": "yes" is not a boolean`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := st.Revert(ctx, tt.id, tt.c)
				require.ErrorIs(t, err, tt.is)
				assert.ErrorContains(t, err, tt.msg)
				assert.Equal(t, want, snapshot(), "nothing written")
			})
		}
		// Reverting to the newest entry restores what is there: allowed.
		_, err = st.Revert(ctx, e3.ID, change("no-op", 3))
		require.NoError(t, err)
	})
}

// previousSchema is the schema of the version before changelog entries
// recorded declarations.
func previousSchema(t *testing.T, dialect string) string {
	s := strings.Replace(scopeflags.Schema, ",\n    declarations_text TEXT", "", 1)
	require.NotEqual(t, scopeflags.Schema, s)
	// Nor the declarations' columns of migration 7 (its table goes with
	// migration 6's audit log, below).
	noOwner := strings.Replace(s, ",\n    owner         TEXT    NOT NULL DEFAULT '',\n    permanent     BOOLEAN NOT NULL DEFAULT FALSE", "", 1)
	require.NotEqual(t, s, noOwner)
	s = noOwner
	// Nor the tables of migration 6.
	for _, cut := range [][2]string{{"-- One row a flag a changelog entry touched", "-- One row an API key."},
		{"-- One row a key event", "-- A single row counting saves."}} {
		i, j := strings.Index(s, cut[0]), strings.Index(s, cut[1])
		require.True(t, i >= 0 && j > i, "schema.sql has %q before %q", cut[0], cut[1])
		s = s[:i] + s[j:]
	}
	s = strings.Replace(s, " WITH (fillfactor = 70)", "", 1) // nor the fill factor
	if dialect == "sqlite" {
		s = strings.NewReplacer("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT", "TIMESTAMPTZ", "TIMESTAMP").Replace(s)
	}
	return s
}

// TestUpgradeRecordsDeclarations opens a database of the previous
// version: the newest entry gets the current declarations, older ones
// none, and reverting to an older one restores its rules and keeps the
// declarations.
func TestUpgradeRecordsDeclarations(t *testing.T) {
	ctx := context.Background()
	dsns := sqlstoretest.DSNs(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			raw, err := sql.Open(map[string]string{"sqlite": "sqlite", "postgres": "postgres"}[name], dsn)
			require.NoError(t, err)
			_, err = raw.ExecContext(ctx, previousSchema(t, name))
			require.NoError(t, err)
			_, err = raw.ExecContext(ctx, `
INSERT INTO feature_rules (flag, scope, priority, value) VALUES ('ui.theme', 'default', 1, 'dark');
INSERT INTO feature_flags VALUES ('ui.theme', 'string', 'light', '', FALSE, '[]', '', '', '2026-01-01 00:00:00');
INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision, rules_text) VALUES
  ('2026-01-01 00:00:00', 'a', 'first', '+x', 1, 'ui.theme	default	1	light
'),
  ('2026-01-02 00:00:00', 'a', 'second', '+y', 2, 'ui.theme	default	1	dark
');
UPDATE feature_revision SET revision = 3;`) // revision 3: an unaudited push
			require.NoError(t, err)
			require.NoError(t, raw.Close())

			st, err := sqlstore.OpenWith(ctx, dsn, sqlstore.Options{Migrate: true})
			require.NoError(t, err)
			defer st.Close()
			if name == "postgres" {
				raw, err := sql.Open("postgres", dsn)
				require.NoError(t, err)
				var opts string
				require.NoError(t, raw.QueryRowContext(ctx, `SELECT coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE oid = 'feature_rules'::regclass`).Scan(&opts))
				raw.Close()
				assert.Equal(t, "fillfactor=70", opts, "the rules table gets the fill factor")
			}
			e2, err := st.ChangelogEntry(ctx, 2)
			require.NoError(t, err)
			assert.Equal(t, sql.NullString{String: `{"name":"ui.theme","type":"string","default":"light"}` + "\n", Valid: true}, e2.Declarations)
			e1, err := st.ChangelogEntry(ctx, 1)
			require.NoError(t, err)
			assert.False(t, e1.Declarations.Valid)
			assert.True(t, e1.Revertible)

			_, err = st.PushDefinitions(ctx, []rules.Definition{{Name: "ui.theme", Type: rules.String, Default: "light"}, {Name: "x.y", Type: rules.Int, Default: "1"}},
				change("more", 3), sqlstore.PushOptions{})
			require.NoError(t, err)
			_, err = st.Revert(ctx, 1, change("back to light", 4))
			require.NoError(t, err)
			cfg, err := st.Load(ctx)
			require.NoError(t, err)
			assert.Equal(t, "ui.theme\tdefault\t1\tlight\n", rules.Format(cfg.Rules))
			assert.Len(t, cfg.Flags, 2, "an entry without declarations restores only the rules")
			_, err = st.Revert(ctx, 2, change("back to dark", 5))
			require.NoError(t, err)
			defs, err := st.Definitions(ctx)
			require.NoError(t, err)
			assert.Len(t, defs, 1, "the upgraded newest entry restores the declarations it was given")
		})
	}
}

// TestTextHygiene: comments, actors and key names that are not human
// text, or too long, are refused the same way on both dialects, naming
// the field, and nothing is written.
func TestTextHygiene(t *testing.T) {
	long := strings.Repeat("é", sqlstore.MaxComment)
	tests := []struct {
		name, comment, actor, key string
		is                        error
		msg                       string // "" means accepted
	}{
		{"newline and tab", "Ann asked:\n\tchocolate", "ann", "deploy\tbot", nil, ""},
		{"longest", long, strings.Repeat("a", sqlstore.MaxActor), strings.Repeat("k", sqlstore.MaxKeyName), nil, ""},
		{"BEL", "ring\a", "ann", "k", sqlstore.ErrNotText, "comment: control character U+0007 at byte 4"},
		{"NUL", "a\x00b", "ann", "k", sqlstore.ErrNotText, "comment: control character U+0000 at byte 1"},
		{"invalid UTF-8", "caf\xe9", "ann", "k", sqlstore.ErrNotText, "comment: invalid UTF-8 at byte 3"},
		{"C1 control", "x\u0085y", "ann", "k", sqlstore.ErrNotText, "comment: control character U+0085 at byte 1"},
		{"DEL", "x\x7f", "ann", "k", sqlstore.ErrNotText, "comment: control character U+007F at byte 1"},
		{"carriage return", "x\r\n", "ann", "k", sqlstore.ErrNotText, "comment: control character U+000D at byte 1"},
		{"too long", long + "x", "ann", "k", sqlstore.ErrTooLong, "comment: 2001 characters; at most 2000 are allowed"},
		{"blank", " \n\t", "ann", "k", sqlstore.ErrRequired, "comment: a comment is required: say who asked for this change and why"},
		{"actor escape", "ok", "ann\x1b[31m", "k", sqlstore.ErrNotText, "actor: control character U+001B at byte 3"},
		{"actor too long", "ok", strings.Repeat("a", sqlstore.MaxActor+1), "k", sqlstore.ErrTooLong, "actor: 201 characters; at most 200 are allowed"},
		{"no actor", "ok", "", "k", sqlstore.ErrRequired, "actor: an actor is required"},
		{"key name NUL", "ok", "ann", "bot\x00", sqlstore.ErrNotText, "name: control character U+0000 at byte 3"},
		{"key name too long", "ok", "ann", strings.Repeat("k", sqlstore.MaxKeyName+1), sqlstore.ErrTooLong, "name: 201 characters; at most 200 are allowed"},
	}
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		e0, err := st.ReplaceRules(ctx, parse(t, "a default 1 x\n"), change("start", 0))
		require.NoError(t, err)
		snapshot := func() string {
			cfg, err := st.Load(ctx)
			require.NoError(t, err)
			n, err := st.CountKeys(ctx)
			require.NoError(t, err)
			return fmt.Sprintf("%d %d\n%s%s", cfg.Revision, n, rules.Format(cfg.Rules), sqlstore.DeclarationsText(cfg.Flags))
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rev, err := st.Revision(ctx)
				require.NoError(t, err)
				c := sqlstore.Change{Comment: tt.comment, Actor: tt.actor, BaseRevision: rev}
				keyErr := func() error {
					_, err := st.CreateKey(ctx, sqlstore.NewKey(), tt.key, "read")
					return err
				}
				writes := map[string]func() error{
					"save": func() error {
						_, err := st.ReplaceRules(ctx, parse(t, fmt.Sprintf("a default 1 v%d\n", rev)), c)
						return err
					},
					"push": func() error {
						_, err := st.PushDefinitions(ctx, []rules.Definition{{Name: fmt.Sprintf("f%d", rev), Type: rules.Int, Default: "1"}}, c, sqlstore.PushOptions{})
						return err
					},
					"revert": func() error {
						_, err := st.Revert(ctx, e0.ID, c)
						return err
					},
				}
				if strings.HasPrefix(tt.msg, "name:") || tt.msg == "" {
					writes = map[string]func() error{"create key": keyErr}
				}
				for what, write := range writes {
					before := snapshot()
					err := write()
					if tt.msg == "" {
						require.NoError(t, err, what)
						if what == "create key" {
							_, err := st.ReplaceRules(ctx, parse(t, "a default 1 accepted\n"), c)
							require.NoError(t, err, "save")
							k, err := st.Keys(ctx)
							require.NoError(t, err)
							assert.Equal(t, tt.key, k[len(k)-1].Name, "kept as given")
						}
						continue
					}
					require.ErrorIs(t, err, sqlstore.ErrInvalid, what)
					require.ErrorIs(t, err, tt.is, what)
					var fe *sqlstore.FieldError
					require.ErrorAs(t, err, &fe, what)
					assert.Equal(t, "sqlstore: invalid input: "+tt.msg, err.Error(), what)
					assert.True(t, utf8.ValidString(err.Error()), "the message never repeats the value")
					assert.Equal(t, before, snapshot(), "%s: nothing written", what)
				}
			})
		}
	})
}

// TestChangelogListIsBounded: the list cuts a long diff at a line end
// and says so; the entry has it whole.
func TestChangelogListIsBounded(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		var b strings.Builder
		for i := range 2000 {
			fmt.Fprintf(&b, "app.flag%04d default 1 value number %d\n", i, i)
		}
		small, err := st.ReplaceRules(ctx, parse(t, "a default 1 x\n"), change("few", 0))
		require.NoError(t, err)
		e, err := st.ReplaceRules(ctx, parse(t, b.String()), change("many", 1))
		require.NoError(t, err)
		require.Greater(t, len(e.Diff), sqlstore.MaxListDiff)

		es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
		require.NoError(t, err)
		require.Len(t, es, 2)
		assert.False(t, es[1].Truncated)
		assert.Equal(t, small.Diff, es[1].Diff, "the small diff is whole")
		assert.True(t, es[0].Truncated)
		assert.LessOrEqual(t, utf8.RuneCountInString(es[0].Diff), sqlstore.MaxListDiff)
		assert.Greater(t, len(es[0].Diff), sqlstore.MaxListDiff-100, "cut at the last line that fits")
		assert.True(t, strings.HasPrefix(e.Diff, es[0].Diff), "a prefix of the diff")
		assert.True(t, strings.HasSuffix(es[0].Diff, "\n"), "whole lines")
		assert.False(t, es[0].Text.Valid || es[0].Declarations.Valid, "no texts in the list")

		whole, err := st.ChangelogEntry(ctx, e.ID)
		require.NoError(t, err)
		assert.True(t, e.Diff == whole.Diff, "the entry has the whole diff")
		assert.False(t, whole.Truncated)
	})
}

// TestDeclarationsText: the canonical text is stable, escapes control
// characters and reads back to the same declarations.
func TestDeclarationsText(t *testing.T) {
	defs := []rules.Definition{
		{Name: "z.json", Type: rules.JSON, Default: `{"a":[1,2],"b":"<x>"}`, Schema: `{"type":"object"}`, Salt: "s1"},
		{Name: "a.float", Type: rules.Float, Default: "1.50", Description: "Line one\nline two\a", External: true},
		{Name: "m.str", Type: rules.String, Default: `say "hi"`, Variants: []rules.Variant{{Name: "b", Value: "B"}, {Name: "a", Value: "A"}}},
		{Name: "b.bool", Type: rules.Boolean, Default: "true"},
		{Name: "i.int", Type: rules.Int, Default: "-7"},
	}
	text := sqlstore.DeclarationsText(defs)
	assert.Equal(t, `{"name":"a.float","type":"float","default":1.50,"external":true,"description":"Line one\nline two\u0007"}
{"name":"b.bool","type":"boolean","default":true}
{"name":"i.int","type":"int","default":-7}
{"name":"m.str","type":"string","default":"say \"hi\"","variants":{"a":"A","b":"B"}}
{"name":"z.json","type":"json","default":{"a":[1,2],"b":"<x>"},"schema":{"type":"object"},"salt":"s1"}
`, text)
	back, err := sqlstore.ParseDeclarationsText(text)
	require.NoError(t, err)
	assert.Equal(t, text, sqlstore.DeclarationsText(back))
	for i, d := range back {
		want := defs[map[string]int{"a.float": 1, "b.bool": 3, "i.int": 4, "m.str": 2, "z.json": 0}[d.Name]]
		if d.Name == "m.str" {
			want.Variants = []rules.Variant{{Name: "a", Value: "A"}, {Name: "b", Value: "B"}}
		}
		assert.True(t, want.Equal(d), "%d: %+v", i, d)
	}
	empty, err := sqlstore.ParseDeclarationsText("")
	require.NoError(t, err)
	assert.Empty(t, empty)

	// A hand-edited database: the bad default reads back as an error
	// naming the flag.
	bad := sqlstore.DeclarationsText([]rules.Definition{{Name: "n", Type: rules.Int, Default: "many"}})
	assert.Equal(t, `{"name":"n","type":"int","default":"many"}`+"\n", bad)
	_, err = sqlstore.ParseDeclarationsText(bad)
	assert.ErrorContains(t, err, `flags[0] (n): default: many (string) is not a valid int value`)
	assert.True(t, errors.Is(err, rules.ErrDefinition))
}

// TestReplaceAll: rules and declarations in one change (a first start's
// seed), the rules checked against the new declarations.
func TestReplaceAll(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		_, err := st.ReplaceAll(ctx, parse(t, "checkout.express default 1 yes\n"), declsV1, change("seed", 0))
		require.ErrorIs(t, err, sqlstore.ErrInvalid)
		assert.ErrorContains(t, err, `bad value for boolean flag "checkout.express": "yes" is not a boolean`)
		_, err = st.ReplaceAll(ctx, nil, []rules.Definition{declsV1[0], declsV1[0]}, change("seed", 0))
		assert.ErrorIs(t, err, sqlstore.ErrInvalid)
		requireGapless(t, st)

		e, err := st.ReplaceAll(ctx, parse(t, "checkout.express default 1 true\n"), declsV1, change("seed", 0))
		require.NoError(t, err)
		assert.Equal(t, int64(1), e.Revision)
		assert.True(t, strings.HasPrefix(e.Diff, "--- rules\n+++ rules\n@@ -0,0 +1 @@\n+checkout.express\tdefault\t1\ttrue\n--- declarations\n+++ declarations\n@@ -0,0 +1,2 @@\n"), e.Diff)
		cfg, err := st.Load(ctx)
		require.NoError(t, err)
		assert.Len(t, cfg.Rules, 1)
		assert.Equal(t, sqlstore.DeclarationsText(declsV1), sqlstore.DeclarationsText(cfg.Flags))
		_, err = st.ReplaceAll(ctx, nil, nil, change("seed again", 0))
		assert.ErrorIs(t, err, sqlstore.ErrConflict, "a second seed finds revision 1")
		requireGapless(t, st)
	})
}
