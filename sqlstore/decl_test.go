package sqlstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// everyField declares a flag of each type with every field a
// declaration can have.
var everyField = []rules.Definition{
	{Name: "api.limits", Type: rules.JSON, Default: `{"max":10,"name":"a \"b\" <c>"}`, Description: "Limits, with \"quotes\" and <html>.",
		Schema: `{"required":["max"],"type":"object"}`, Variants: []rules.Variant{{Name: "big", Value: `{"max":100}`}}},
	{Name: "checkout.new_flow", Type: rules.Boolean, Default: "false", Description: "New checkout.", External: true,
		Variants: []rules.Variant{{Name: "off", Value: "false"}, {Name: "on", Value: "true"}}},
	{Name: "jobs.retries", Type: rules.Int, Default: "3", Salt: "jobs-2024", Variants: []rules.Variant{{Name: "many", Value: "10"}}},
	{Name: "sampling.ratio", Type: rules.Float, Default: "0.25", Description: "Fraction sampled."},
	{Name: "ui.theme", Type: rules.String, Default: "light", Description: "Theme.\nSecond line\ttabbed, ünïcode",
		Variants: []rules.Variant{{Name: "dark", Value: "#111"}, {Name: "light", Value: "#fff"}, {Name: "num", Value: "12"}}},
}

// TestDeclarationsFileRoundTrip: what flags export prints is what flags
// push reads, and pushing it back changes nothing.
func TestDeclarationsFileRoundTrip(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		_, err := st.PushDefinitions(ctx, everyField, change("declare", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		stored, err := st.Definitions(ctx)
		require.NoError(t, err)
		file := sqlstore.DeclarationsFile(stored)
		back, err := rules.ParseDeclarations([]byte(file))
		require.NoError(t, err, file)
		require.Len(t, back, len(everyField))
		for i := range back {
			assert.True(t, back[i].Equal(stored[i]), "%+v\n%+v", back[i], stored[i])
		}
		assert.Equal(t, everyField, back)
		rep, err := st.PushDefinitions(ctx, back, change("again", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		assert.False(t, rep.Written)
		assert.Empty(t, rep.Updated)
		assert.Empty(t, rep.Removed)
		assert.Len(t, rep.Unchanged, len(everyField))
	})
	empty, err := rules.ParseDeclarations([]byte(sqlstore.DeclarationsFile(nil)))
	require.NoError(t, err)
	assert.Empty(t, empty)
}

// TestPushStrictByDefault: a push whose declarations reject stored rule
// values writes nothing and names each rule with its line in the stored
// rules text; Force writes; removed fields are listed before writing.
func TestPushStrictByDefault(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		_, err := st.PushDefinitions(ctx, everyField, change("declare", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		_, err = st.ReplaceRules(ctx, parse(t, "checkout.new_flow default 1 false\n"+
			"checkout.new_flow beta 5 true\n    when percent(10)\n"+
			"jobs.retries default 1 7\napi.limits default 1 {\"max\":1}\nui.theme default 1 dark\n"), change("rules", sqlstore.AnyRevision))
		require.NoError(t, err)
		text, _, err := st.LoadRules(ctx)
		require.NoError(t, err)
		require.Equal(t, "api.limits\tdefault\t1\t{\"max\":1}\ncheckout.new_flow\tbeta\t5\ttrue\n    when percent(10)\n"+
			"checkout.new_flow\tdefault\t1\tfalse\njobs.retries\tdefault\t1\t7\nui.theme\tdefault\t1\tdark\n", rules.Format(text))

		v2 := []rules.Definition{
			everyField[0],
			{Name: "checkout.new_flow", Type: rules.Int, Default: "0", External: true},
			{Name: "jobs.retries", Type: rules.Int, Default: "3", Variants: []rules.Variant{{Name: "many", Value: "10"}}},
			everyField[3],
			{Name: "ui.theme", Type: rules.String, Default: "light", Variants: []rules.Variant{{Name: "light", Value: "#fff"}}},
		}
		for _, dry := range []bool{true, false} {
			c := change("v2", sqlstore.AnyRevision)
			c.DryRun = dry
			rep, err := st.PushDefinitions(ctx, v2, c, sqlstore.PushOptions{})
			require.ErrorIs(t, err, sqlstore.ErrIncompatible, "dry run %v", dry)
			assert.False(t, rep.Written)
			assert.Equal(t, []sqlstore.Incompatible{
				{Line: 2, Flag: "checkout.new_flow", Scope: "beta", Priority: 5, Value: "true", Error: `"true" is not an int`},
				{Line: 4, Flag: "checkout.new_flow", Scope: "default", Priority: 1, Value: "false", Error: `"false" is not an int`},
			}, rep.Incompatible)
			assert.Equal(t, []string{
				"checkout.new_flow: description removed", `checkout.new_flow: variant "off" removed`, `checkout.new_flow: variant "on" removed`,
				"jobs.retries: salt removed",
				"ui.theme: description removed", `ui.theme: variant "dark" removed`, `ui.theme: variant "num" removed`,
			}, rep.Removed)
		}
		defs, err := st.Definitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, sqlstore.DeclarationsText(everyField), sqlstore.DeclarationsText(defs), "a refused push writes nothing")

		rep, err := st.PushDefinitions(ctx, v2, change("v2 anyway", sqlstore.AnyRevision), sqlstore.PushOptions{Force: true})
		require.NoError(t, err)
		assert.True(t, rep.Written)
		assert.Len(t, rep.Incompatible, 2)
		assert.Len(t, rep.Removed, 7)
	})
}

// TestDeclarationDryRunsWriteNothing: Change.DryRun is how every write is
// previewed, pushes and deletions of declarations too: the report or
// entry says what would be written, and the revision, the declarations
// and the changelog stay as they are.
func TestDeclarationDryRunsWriteNothing(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		_, err := st.PushDefinitions(ctx, everyField[:2], change("declare", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		_, _, err = st.ReplaceText(ctx, "jobs.retries default 1 many\n", nil, change("a rule", sqlstore.AnyRevision))
		require.NoError(t, err)
		dry := change("preview", sqlstore.AnyRevision)
		dry.DryRun = true
		snapshot := func() (int64, []rules.Definition, int) {
			rev, err := st.Revision(ctx)
			require.NoError(t, err)
			defs, err := st.Definitions(ctx)
			require.NoError(t, err)
			es, err := st.Changelog(ctx, sqlstore.ChangelogQuery{})
			require.NoError(t, err)
			return rev, defs, len(es)
		}
		rev, defs, entries := snapshot()
		for _, tc := range []struct {
			name  string
			write func() error
		}{
			{"push", func() error {
				rep, err := st.PushDefinitions(ctx, everyField, dry, sqlstore.PushOptions{})
				assert.False(t, rep.Written)
				assert.Len(t, rep.Created, 3)
				return err
			}},
			{"refused push", func() error {
				bad := []rules.Definition{{Name: "jobs.retries", Type: rules.Int, Default: "3"}}
				rep, err := st.PushDefinitions(ctx, bad, dry, sqlstore.PushOptions{})
				assert.False(t, rep.Written)
				assert.Len(t, rep.Incompatible, 1)
				assert.ErrorIs(t, err, sqlstore.ErrIncompatible)
				return nil
			}},
			{"delete", func() error {
				e, err := st.DeleteDefinitions(ctx, []string{"api.limits"}, dry)
				assert.True(t, e.DryRun)
				assert.Zero(t, e.ID)
				assert.Contains(t, e.Diff, "api.limits")
				return err
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				require.NoError(t, tc.write())
				r, d, n := snapshot()
				assert.Equal(t, rev, r, "no new revision")
				assert.Equal(t, defs, d, "the declarations as they were")
				assert.Equal(t, entries, n, "no changelog entry")
			})
		}
	})
}
