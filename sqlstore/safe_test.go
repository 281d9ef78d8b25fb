package sqlstore_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// tourRules is the README tour's four-line rules file.
const tourRules = `ui.icing                   default            0    vanilla
ui.icing                   team:beta-testers  100  chocolate
ui.icing                   pageid:Person      50   sprinkles
checkout.new_flow.enabled  userslice:0,10     20   on
`

// flagChangeStrings renders e.Flags one a line.
func flagChangeStrings(e sqlstore.Entry) []string {
	var out []string
	for _, c := range e.Flags {
		out = append(out, c.String())
	}
	return out
}

// TestReplaceFlagRulesLeavesOtherFlags: the README tour's import of a
// four-line file replaces the rules of its two flags only; the example
// rules of every other flag stay (ReplaceRules deleted them all).
func TestReplaceFlagRulesLeavesOtherFlags(t *testing.T) {
	examples, err := os.ReadFile("../cmd/feature-info/examples.rules")
	require.NoError(t, err)
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		all := parse(t, string(examples))
		_, err := st.ReplaceRules(ctx, all, change("seed", sqlstore.AnyRevision))
		require.NoError(t, err)
		tour := parse(t, tourRules)
		e, err := st.ReplaceFlagRules(ctx, sqlstore.RuleFlags(tour), tour, change("Bob asked for chocolate icing", 1))
		require.NoError(t, err)
		assert.Equal(t, int64(2), e.Revision)
		assert.False(t, e.Unchanged)
		assert.Equal(t, []string{"checkout.new_flow.enabled: -1", "ui.icing: +1 -1"}, flagChangeStrings(e))
		got, _, err := st.LoadRules(ctx)
		require.NoError(t, err)
		want := 0
		for _, r := range all {
			if r.Flag != "ui.icing" && !(r.Flag == "checkout.new_flow.enabled" && r.Scope == "server.staging") {
				want++
			}
		}
		assert.Len(t, got, want+3)
		text := rules.Format(got)
		for _, flag := range []string{"mail.outgoing.disabled", "notification.global.message", "jobs.reindex.batch_size", "checkout.express.enabled", "ui.theme"} {
			assert.Contains(t, text, flag+"\t", "the rules of %s stay", flag)
		}
		assert.Contains(t, text, "ui.icing\tpageid:Person\t50\tsprinkles")
		assert.NotContains(t, text, "server.staging")

		// An empty list for a flag removes its rules; a rule of a flag not
		// named is refused.
		e, err = st.ReplaceFlagRules(ctx, []string{"mail.outgoing.disabled", "jobs.reindex.batch_size"}, nil, change("drop two", sqlstore.AnyRevision))
		require.NoError(t, err)
		assert.Equal(t, []string{"jobs.reindex.batch_size: all 2 rules removed", "mail.outgoing.disabled: all 1 rule removed"}, flagChangeStrings(e))
		_, err = st.ReplaceFlagRules(ctx, []string{"ui.icing"}, parse(t, "ui.theme default 1 dark\n"), change("wrong flag", sqlstore.AnyRevision))
		require.ErrorIs(t, err, sqlstore.ErrInvalid)
		assert.ErrorContains(t, err, `line 1: flag "ui.theme" is not one of the flags replaced`)
		requireGapless(t, st)
	})
}

// TestWritesThatChangeNothing: a save of the same normalised rules, a
// revert to the state already current and a flag replace with the same
// rules write nothing: the revision stays, no changelog entry.
func TestWritesThatChangeNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		e1, err := st.ReplaceRules(ctx, parse(t, tourRules), change("first", 0))
		require.NoError(t, err)
		require.Equal(t, int64(1), e1.Revision)

		// The same rules in another order and spacing.
		lines := strings.Split(strings.TrimSpace(tourRules), "\n")
		same := strings.Join([]string{lines[3], lines[1], lines[0], lines[2]}, "\n")
		e, _, err := st.ReplaceText(ctx, same, nil, change("again", 1))
		require.NoError(t, err)
		assert.True(t, e.Unchanged)
		assert.Equal(t, int64(1), e.Revision)
		assert.Zero(t, e.ID)

		e, err = st.Revert(ctx, e1.ID, change("revert to current", 1))
		require.NoError(t, err)
		assert.True(t, e.Unchanged)
		assert.Equal(t, int64(1), e.Revision)

		tour := parse(t, tourRules)
		e, err = st.ReplaceFlagRules(ctx, []string{"ui.icing"}, tour[:3], change("same icing", 1))
		require.NoError(t, err)
		assert.True(t, e.Unchanged)

		rev, err := st.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1), rev)
		es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
		require.NoError(t, err)
		assert.Len(t, es, 1)

		// Still refused when based on another revision.
		_, _, err = st.ReplaceText(ctx, same, nil, change("stale", 0))
		require.ErrorIs(t, err, sqlstore.ErrConflict)
	})
}

// TestDryRun: a dry run reads, checks and diffs as the write would and
// writes nothing; a refused one fails as the write would.
func TestDryRun(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		e1, err := st.ReplaceRules(ctx, parse(t, tourRules), change("first", 0))
		require.NoError(t, err)
		dry := change("try", 1)
		dry.DryRun = true

		e, err := st.ReplaceRules(ctx, parse(t, "ui.icing default 0 lemon\n"), dry)
		require.NoError(t, err)
		assert.True(t, e.DryRun)
		assert.False(t, e.Unchanged)
		assert.Equal(t, int64(2), e.Revision, "the revision it would write")
		assert.Zero(t, e.ID)
		assert.Equal(t, []string{"checkout.new_flow.enabled: all 1 rule removed", "ui.icing: +1 -3"}, flagChangeStrings(e))
		assert.Contains(t, e.Diff, "+ui.icing\tdefault\t0\tlemon")
		assert.Equal(t, "ui.icing\tdefault\t0\tlemon\n", e.Text.String)

		e, err = st.ReplaceFlagRules(ctx, []string{"ui.icing"}, parse(t, "ui.icing default 0 lemon\n"), dry)
		require.NoError(t, err)
		assert.Equal(t, []string{"ui.icing: +1 -3"}, flagChangeStrings(e))

		_, err = st.PushDefinitions(ctx, []rules.Definition{{Name: "ui.icing", Type: rules.String, Default: `"vanilla"`}}, change("declare", 1), sqlstore.PushOptions{})
		require.NoError(t, err)
		dry.BaseRevision = 2
		e, err = st.Revert(ctx, e1.ID, dry)
		require.NoError(t, err)
		assert.True(t, e.DryRun)
		assert.Contains(t, e.Diff, "--- declarations")
		assert.Empty(t, e.Flags)

		dry.BaseRevision = 1
		_, err = st.ReplaceRules(ctx, nil, dry)
		require.ErrorIs(t, err, sqlstore.ErrConflict)
		// Every dry run, declarations too, is refused on a stale base
		// revision, and none needs a comment or an actor (those given are
		// checked alike).
		_, err = st.PushDefinitions(ctx, nil, dry, sqlstore.PushOptions{})
		require.ErrorIs(t, err, sqlstore.ErrConflict, "a dry-run push checks the base revision")
		bare := sqlstore.Change{BaseRevision: sqlstore.AnyRevision, DryRun: true}
		_, err = st.ReplaceRules(ctx, parse(t, "ui.icing default 0 lemon\n"), bare)
		require.NoError(t, err)
		_, err = st.ReplaceFlagRules(ctx, []string{"ui.icing"}, nil, bare)
		require.NoError(t, err)
		_, err = st.Revert(ctx, e1.ID, bare)
		require.NoError(t, err)
		_, err = st.DeleteDefinitions(ctx, []string{"ui.icing"}, bare)
		require.NoError(t, err)
		_, err = st.PushDefinitions(ctx, nil, bare, sqlstore.PushOptions{})
		require.NoError(t, err)
		badComment := bare
		badComment.Comment = "x\x00y"
		_, err = st.ReplaceRules(ctx, nil, badComment)
		require.ErrorIs(t, err, sqlstore.ErrInvalid, "a comment given to a dry run is checked")

		rev, err := st.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(2), rev)
		requireGapless(t, st)
		got, _, err := st.LoadRules(ctx)
		require.NoError(t, err)
		assert.Equal(t, rules.Format(parse(t, tourRules)), rules.Format(got))
	})
}
