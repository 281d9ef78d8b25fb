package sqlstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestDiffFlags: the flags an entry's diff names, rules and declarations
// alike, a condition line counted for the rule above it.
func TestDiffFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		diff string
		want []string
	}{
		{"none", "", nil},
		{"added rules", "@@ -0,0 +1,2 @@\n+b.flag\tdefault\t0\ton\n+a.flag\tdefault\t0\toff\n", []string{"a.flag", "b.flag"}},
		{"value changed", "@@ -1,2 +1,2 @@\n-a.flag\tdefault\t1\tx\n+a.flag\tdefault\t1\ty\n c.flag\tdefault\t0\tz\n", []string{"a.flag"}},
		{"condition alone changed", "@@ -2,3 +2,3 @@\n b.flag\tteam:qa\t5\ton\n-    when plan == \"pro\"\n+    when plan == \"free\"\n c.flag\tdefault\t0\tz\n", []string{"b.flag"}},
		{"condition added to the rule removed and added", "@@ -1,2 +1,3 @@\n a.x\tdefault\t1\ty\n-b.y\tdefault\t1\tx\n+b.y\tdefault\t1\tx\n+    when true\n", []string{"b.y"}},
		{"condition after a context line of another side", "@@ -1,3 +1,2 @@\n-old.f\tdefault\t1\tx\n-    when a\n+new.f\tdefault\t1\tx\n+    when b\n", []string{"new.f", "old.f"}},
		{"declarations", "--- declarations\n+++ declarations\n@@ -1,2 +1,2 @@\n {\"name\":\"a.b\",\"type\":\"int\"}\n-{\"name\":\"c.d\",\"type\":\"string\"}\n+{\"name\":\"c.d\",\"type\":\"int\"}\n", []string{"c.d"}},
		{"both", "--- rules\n+++ rules\n@@ -0,0 +1 @@\n+r.f\tdefault\t0\ton\n--- declarations\n+++ declarations\n@@ -0,0 +1 @@\n+{\"name\":\"d.f\"}\n", []string{"d.f", "r.f"}},
		{"no newline at end", "@@ -1 +1 @@\n-a.b\tdefault\t0\tx\n\\ No newline at end of file\n+a.b\tdefault\t0\ty\n\\ No newline at end of file\n", []string{"a.b"}},
		{"what it does not recognise", "+x\n-y\n garbage\n--- declarations\n+not json\n", nil},
		{"each once, byte order", "@@ -0,0 +1,3 @@\n+b\tdefault\t1\tx\n+b\tdefault\t0\ty\n+B\tdefault\t0\ty\n", []string{"B", "b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, sqlstore.DiffFlags(tt.diff))
		})
	}
}

// TestChangelogFilters: every write records the flags it touched (rules
// and declarations, a condition alone included), the changelog reads them
// and filters by flag, actor and time, pages within a filter, and a
// write's touched flags are those its diff names.
func TestChangelogFilters(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		by := func(actor, comment string) sqlstore.Change {
			return sqlstore.Change{Comment: comment, Actor: actor, BaseRevision: sqlstore.AnyRevision}
		}
		var written []sqlstore.Entry
		save := func(actor, text string) {
			t.Helper()
			e, _, err := st.ReplaceText(ctx, text, nil, by(actor, "save"))
			require.NoError(t, err)
			written = append(written, e)
		}
		save("ann", "ui.icing default 0 vanilla\nui.theme default 0 dark\n")                         // 1: both
		save("bob", "ui.icing default 0 lemon\nui.theme default 0 dark\n")                           // 2: icing
		save("ann", "ui.icing default 0 lemon\nui.theme default 0 dark\n    when plan == \"pro\"\n") // 3: theme, condition alone
		rep, err := st.PushDefinitions(ctx, []rules.Definition{{Name: "jobs.retries", Type: rules.Int, Default: "3"}}, by("bob", "push"), sqlstore.PushOptions{})
		require.NoError(t, err)
		pushed, err := st.ChangelogEntry(ctx, rep.ChangelogID) // 4: the declared flag
		require.NoError(t, err)
		written = append(written, pushed)
		e, err := st.ReplaceFlagRules(ctx, []string{"ui.theme"}, nil, by("cy", "remove")) // 5: theme
		require.NoError(t, err)
		written = append(written, e)
		e, err = st.Revert(ctx, written[1].ID, by("ann", "undo")) // 6: theme back, jobs.retries undeclared
		require.NoError(t, err)
		written = append(written, e)

		wantTouched := [][]string{{"ui.icing", "ui.theme"}, {"ui.icing"}, {"ui.theme"}, {"jobs.retries"}, {"ui.theme"}, {"jobs.retries", "ui.theme"}}
		for i, e := range written {
			assert.Equal(t, wantTouched[i], e.Touched, "write %d", i+1)
			assert.Equal(t, sqlstore.DiffFlags(e.Diff), e.Touched, "write %d: its diff's flags", i+1)
			stored, err := st.ChangelogEntry(ctx, e.ID)
			require.NoError(t, err)
			assert.Equal(t, wantTouched[i], stored.Touched, "entry %d", e.ID)
		}
		all, err := st.Changelog(ctx, sqlstore.ChangelogQuery{Limit: 100})
		require.NoError(t, err)
		require.Len(t, all, 6)
		for i, e := range all {
			assert.Equal(t, wantTouched[5-i], e.Touched, "listed entry %d", e.ID)
		}

		ids := func(q sqlstore.ChangelogQuery) []int64 {
			t.Helper()
			es, err := st.Changelog(ctx, q)
			require.NoError(t, err)
			out := []int64{}
			for _, e := range es {
				out = append(out, e.ID)
			}
			return out
		}
		id := func(n int) int64 { return written[n-1].ID }
		mid := all[2].Time // entry 4's time
		for _, tt := range []struct {
			name string
			q    sqlstore.ChangelogQuery
			want []int64
		}{
			{"flag", sqlstore.ChangelogQuery{Flag: "ui.theme"}, []int64{id(6), id(5), id(3), id(1)}},
			{"declared flag", sqlstore.ChangelogQuery{Flag: "jobs.retries"}, []int64{id(6), id(4)}},
			{"unknown flag", sqlstore.ChangelogQuery{Flag: "no.such"}, []int64{}},
			{"flag names are exact", sqlstore.ChangelogQuery{Flag: "ui"}, []int64{}},
			{"actor", sqlstore.ChangelogQuery{Actor: "bob"}, []int64{id(4), id(2)}},
			{"actor is exact", sqlstore.ChangelogQuery{Actor: "Bob"}, []int64{}},
			{"flag and actor", sqlstore.ChangelogQuery{Flag: "ui.icing", Actor: "ann"}, []int64{id(1)}},
			{"since", sqlstore.ChangelogQuery{Since: mid}, []int64{id(6), id(5), id(4)}},
			{"until", sqlstore.ChangelogQuery{Until: mid}, []int64{id(3), id(2), id(1)}},
			{"since and until", sqlstore.ChangelogQuery{Since: all[4].Time, Until: mid}, []int64{id(3), id(2)}},
			{"since in another zone", sqlstore.ChangelogQuery{Since: mid.In(time.FixedZone("x", -7*3600))}, []int64{id(6), id(5), id(4)}},
			{"a page of a flag", sqlstore.ChangelogQuery{Flag: "ui.theme", Limit: 2}, []int64{id(6), id(5)}},
			{"the next page of a flag", sqlstore.ChangelogQuery{Flag: "ui.theme", Limit: 2, Before: id(5)}, []int64{id(3), id(1)}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				assert.Equal(t, tt.want, ids(tt.q))
			})
		}

		// A dry run says what it would touch and records nothing.
		dry, _, err := st.ReplaceText(ctx, "ui.icing default 0 mint\n", nil, sqlstore.Change{DryRun: true, BaseRevision: sqlstore.AnyRevision})
		require.NoError(t, err)
		assert.Equal(t, []string{"ui.icing", "ui.theme"}, dry.Touched)
		assert.Len(t, ids(sqlstore.ChangelogQuery{Flag: "ui.icing"}), 2)
	})
}

// TestKeyEvents: creating and revoking keys is recorded in the audit log,
// who and which key, newest first, without bumping the rules' revision;
// revoking a revoked key records nothing; an actor that is not text is
// refused before anything is written.
func TestKeyEvents(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		_, _, err := st.ReplaceText(ctx, "a.b default 0 on\n", nil, change("rules", sqlstore.AnyRevision))
		require.NoError(t, err)
		k1, err := st.CreateKeyBy(ctx, "ann", sqlstore.NewKey(), "deploy", "write")
		require.NoError(t, err)
		k2, err := st.CreateKey(ctx, sqlstore.NewKey(), "ci", "read")
		require.NoError(t, err)
		_, err = st.RevokeKeyBy(ctx, "bob", k1.ID)
		require.NoError(t, err)
		_, err = st.RevokeKeyBy(ctx, "bob", k1.ID)
		require.NoError(t, err, "revoking a revoked key is not an error")
		_, err = st.RevokeKeyBy(ctx, "bob", 999)
		require.ErrorIs(t, err, sqlstore.ErrNotFound)
		_, err = st.CreateKeyBy(ctx, "bad\x07actor", sqlstore.NewKey(), "x", "read")
		require.ErrorIs(t, err, sqlstore.ErrInvalid)
		_, err = st.RevokeKeyBy(ctx, strings.Repeat("a", sqlstore.MaxActor+1), k2.ID)
		require.ErrorIs(t, err, sqlstore.ErrInvalid)

		evs, err := st.KeyEvents(ctx, sqlstore.KeyEventQuery{})
		require.NoError(t, err)
		got := []string{}
		for _, e := range evs {
			assert.False(t, e.Time.IsZero())
			assert.Equal(t, time.UTC, e.Time.Location())
			got = append(got, fmt.Sprintf("%s %s %d %s %s", e.Actor, e.Action, e.KeyID, e.KeyName, e.Scope))
		}
		assert.Equal(t, []string{"bob revoke 1 deploy write", " create 2 ci read", "ann create 1 deploy write"}, got)
		page, err := st.KeyEvents(ctx, sqlstore.KeyEventQuery{Limit: 1, Before: evs[0].ID})
		require.NoError(t, err)
		require.Len(t, page, 1)
		assert.Equal(t, evs[1], page[0])

		rev, err := st.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1), rev, "key events never bump the revision")
		es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
		require.NoError(t, err)
		assert.Len(t, es, 1, "nor write changelog entries")
		ks, err := st.Keys(ctx)
		require.NoError(t, err)
		assert.Len(t, ks, 2, "the refused creation stored nothing")
	})
}

// TestMigrateFillsChangelogFlags upgrades a database of the last
// unversioned release (schema version 5) holding entries with real
// diffs, on both dialects: migration 6 records the flags each entry
// touched from its diff, the keys' audit log starts empty, the revision
// stays, and new writes and key events are recorded.
func TestMigrateFillsChangelogFlags(t *testing.T) {
	ctx := context.Background()
	for dialect, dsn := range sqlstoretest.DSNs(t) {
		t.Run(dialect, func(t *testing.T) {
			sqlstoretest.Release(t, dsn, 5)
			_, err := sqlstoretest.RawDB(t, dsn).Exec(`
INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision, rules_text, declarations_text) VALUES
  ('2026-01-03 00:00:00', 'c', 'third', '@@ -1,3 +1,3 @@
 ui.icing	team:qa	10	chocolate
-ui.icing	default	5	lemon
+ui.icing	default	5	lime
     when plan == "pro"
', 3, NULL, NULL),
  ('2026-01-04 00:00:00', 'd', 'fourth', '--- rules
+++ rules
@@ -4,2 +4,2 @@
 ui.icing	default	0	vanilla
-ui.theme	default	1	dark
+ui.theme	default	1	light
--- declarations
+++ declarations
@@ -1 +1,2 @@
+{"name":"jobs.retries","type":"int","default":3}
 {"name":"ui.theme","type":"string","default":"light"}
', 4, NULL, NULL);
UPDATE feature_revision SET revision = 4;`)
			require.NoError(t, err)
			up, err := sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{})
			require.NoError(t, err)
			assert.Equal(t, sqlstore.SchemaVersion(), up.To)
			assert.Contains(t, up.Pending, sqlstore.Migration{Version: 6, Name: "changelog_flags_and_audit", CompatibleFrom: 5}, "only tables added: version 5 keeps running")

			st, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			defer st.Close()
			es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
			require.NoError(t, err)
			require.Len(t, es, 4)
			touched := map[string][]string{}
			for _, e := range es {
				touched[e.Comment] = e.Touched
			}
			assert.Equal(t, map[string][]string{"first": nil, "second": nil, "third": {"ui.icing"}, "fourth": {"jobs.retries", "ui.theme"}}, touched)
			theme, err := st.Changelog(ctx, sqlstore.ChangelogQuery{Flag: "ui.theme"})
			require.NoError(t, err)
			require.Len(t, theme, 1)
			assert.Equal(t, "fourth", theme[0].Comment)
			evs, err := st.KeyEvents(ctx, sqlstore.KeyEventQuery{})
			require.NoError(t, err)
			assert.Empty(t, evs)
			rev, err := st.Revision(ctx)
			require.NoError(t, err)
			assert.Equal(t, int64(4), rev)

			e, _, err := st.ReplaceText(ctx, "ui.theme default 1 light\n", nil, change("after", 4))
			require.NoError(t, err)
			assert.Equal(t, []string{"ui.icing", "ui.theme"}, e.Touched)
			theme, err = st.Changelog(ctx, sqlstore.ChangelogQuery{Flag: "ui.theme"})
			require.NoError(t, err)
			assert.Len(t, theme, 2)
			_, err = st.RevokeKeyBy(ctx, "ann", 1) // the release's key
			require.NoError(t, err)
			evs, err = st.KeyEvents(ctx, sqlstore.KeyEventQuery{})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			assert.Equal(t, "deploy", evs[0].KeyName)

			// A version-5 server still running (a rolling upgrade) writes
			// an entry as it always did, without filing its flags; the
			// next write of this binary files it.
			_, err = sqlstoretest.RawDB(t, dsn).Exec(`INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision, rules_text, declarations_text) VALUES
  ('2026-01-05 00:00:00', 'old', 'by version 5', '@@ -1 +1 @@
-ui.theme	default	1	light
+ui.theme	default	1	blue
', 6, 'ui.theme	default	1	blue
', '')`)
			require.NoError(t, err)
			_, err = sqlstoretest.RawDB(t, dsn).Exec(`UPDATE feature_revision SET revision = 6`)
			require.NoError(t, err)
			_, _, err = st.ReplaceText(ctx, "ui.theme default 1 light\nui.icing default 0 plain\n", nil, change("new again", 6))
			require.NoError(t, err)
			theme, err = st.Changelog(ctx, sqlstore.ChangelogQuery{Flag: "ui.theme"})
			require.NoError(t, err)
			var comments []string
			for _, e := range theme {
				comments = append(comments, e.Comment)
			}
			assert.Equal(t, []string{"by version 5", "after", "fourth"}, comments, "filed at the next write")
		})
	}
}

// TestRestoreVersion1Dump: a dump of format version 1 (before the audit
// log) still restores: everything it holds, an empty audit log, and the
// flags each entry touched rebuilt from the diffs.
func TestRestoreVersion1Dump(t *testing.T) {
	ctx := context.Background()
	src := sqlstoretest.SQLite(t)
	fillForDump(t, src)
	v2 := dump(t, src)
	i := strings.Index(v2, ",\n\"audit\": [")
	require.Positive(t, i)
	v1 := strings.Replace(v2[:i], `"version": 3,`, `"version": 1,`, 1) + "\n}\n"
	for _, st := range sqlstoretest.Stores(t) {
		t.Run(st.Dialect().String(), func(t *testing.T) {
			res, err := st.Restore(ctx, strings.NewReader(v1), sqlstore.RestoreOptions{})
			require.NoError(t, err)
			assert.Equal(t, sqlstore.Counts{Revision: 4, Rules: 4, Declarations: 2, Changelog: 4, Keys: 4}, res.Restored)
			evs, err := st.KeyEvents(ctx, sqlstore.KeyEventQuery{})
			require.NoError(t, err)
			assert.Empty(t, evs)
			want, err := src.Changelog(ctx, sqlstore.ChangelogQuery{})
			require.NoError(t, err)
			got, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
			require.NoError(t, err)
			assert.Equal(t, want, got, "the same entries, touching the same flags")
			theme, err := st.Changelog(ctx, sqlstore.ChangelogQuery{Flag: "ops.mode"})
			require.NoError(t, err)
			assert.True(t, slices.ContainsFunc(theme, func(e sqlstore.Entry) bool { return e.Comment == "the first rules" }))
			assert.Len(t, theme, 3)
		})
	}
}

// TestLastChanges: each flag's newest entry, however many entries came
// after it (the flag pages used to look only at the 300 newest), none for
// flags never touched; a bounded question.
func TestLastChanges(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		first, _, err := st.ReplaceText(ctx, "old.flag default 0 x\nbusy.flag default 0 0\n", nil, change("first", 0))
		require.NoError(t, err)
		var last sqlstore.Entry
		for i := 1; i <= 320; i++ {
			last, _, err = st.ReplaceFlagText(ctx, []string{"busy.flag"}, fmt.Sprintf("busy.flag default 0 %d\n", i), nil, change(fmt.Sprintf("busy %d", i), sqlstore.AnyRevision))
			require.NoError(t, err)
		}
		got, err := st.LastChanges(ctx, []string{"old.flag", "busy.flag", "never.flag"})
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.Equal(t, first.ID, got["old.flag"].ID, "older than 300 entries, still found")
		assert.Equal(t, last.ID, got["busy.flag"].ID)
		assert.Equal(t, "busy 320", got["busy.flag"].Comment)
		assert.Equal(t, []string{"busy.flag"}, got["busy.flag"].Touched)
		_, err = st.LastChanges(ctx, make([]string, sqlstore.MaxLastChanges+1))
		assert.ErrorIs(t, err, sqlstore.ErrInvalid)
	})
}
