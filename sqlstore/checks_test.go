package sqlstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// errorLines renders the line problems of a refused write.
func errorLines(t *testing.T, err error) []string {
	t.Helper()
	require.ErrorIs(t, err, sqlstore.ErrInvalid)
	var list rules.ErrorList
	require.True(t, errors.As(err, &list), "%v", err)
	var out []string
	for _, e := range list {
		out = append(out, e.Error())
	}
	return out
}

// TestWritesReportEveryProblem: ReplaceText and ReplaceFlagText check the
// rules of the lines that parse even when others do not, against the
// stored declarations and c.Declared, and refuse with every problem in
// line order, duplicates once; a dry run says the same. SQLite and
// PostgreSQL.
func TestWritesReportEveryProblem(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		_, err := st.PushDefinitions(ctx, []rules.Definition{{Name: "typed", Type: rules.Boolean, Default: "false"}},
			change("declare", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		text := "typed default 1 maybe\n" +
			"typed team:qa 1 true\n" +
			"broken line\n" +
			"coded default 1 x\n"
		c := change("one pass", sqlstore.AnyRevision)
		c.Declared = []rules.Definition{{Name: "coded", Type: rules.Int, Default: "1"}}
		want := []string{
			`line 1: bad value for boolean flag "typed": "maybe" is not a boolean: want exactly true or false`,
			`line 2: duplicate priority for flag "typed": 1`,
			`line 3: missing priority: want "flag scope priority value", got 2 field(s)`,
			`line 4: bad value for int flag "coded": "x" is not an int`,
		}
		_, _, err = st.ReplaceText(ctx, text, nil, c)
		assert.Equal(t, want, errorLines(t, err))
		c.DryRun = true
		_, _, err = st.ReplaceFlagText(ctx, nil, text, nil, c)
		assert.Equal(t, want, errorLines(t, err))
		rev, err := st.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1), rev, "nothing written")
	})
}

// TestWritesRefuseNegationsOfDocumentedBooleans: a rule of a flag that
// Change.Boolean names, not declared with a type, whose value reads as
// off is refused by every write of the rules unless AllowNegations, which
// writes it with the warning. SQLite and PostgreSQL.
func TestWritesRefuseNegationsOfDocumentedBooleans(t *testing.T) {
	msg := `line 1: checkout.new_flow.enabled = "off" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`
	text := "checkout.new_flow.enabled default 100 off\n"
	boolean := func(flag string) bool { return flag == "checkout.new_flow.enabled" }
	writes := map[string]func(st *sqlstore.Store, c sqlstore.Change) (sqlstore.Entry, error){
		"ReplaceText": func(st *sqlstore.Store, c sqlstore.Change) (sqlstore.Entry, error) {
			e, _, err := st.ReplaceText(context.Background(), text, nil, c)
			return e, err
		},
		"ReplaceFlagText": func(st *sqlstore.Store, c sqlstore.Change) (sqlstore.Entry, error) {
			e, _, err := st.ReplaceFlagText(context.Background(), nil, text, nil, c)
			return e, err
		},
		"ReplaceRules": func(st *sqlstore.Store, c sqlstore.Change) (sqlstore.Entry, error) {
			return st.ReplaceRules(context.Background(), parse(t, text), c)
		},
		"ReplaceFlagRules": func(st *sqlstore.Store, c sqlstore.Change) (sqlstore.Entry, error) {
			return st.ReplaceFlagRules(context.Background(), []string{"checkout.new_flow.enabled"}, parse(t, text), c)
		},
	}
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		for name, write := range writes {
			t.Run(name, func(t *testing.T) {
				c := change("trap", sqlstore.AnyRevision)
				c.Boolean = boolean
				_, err := write(st, c)
				assert.Equal(t, []string{msg}, errorLines(t, err))
				assert.ErrorIs(t, err, rules.ErrNegation)
				c.AllowNegations = true
				e, err := write(st, c)
				require.NoError(t, err)
				require.Len(t, e.Warnings, 1)
				assert.Equal(t, msg, e.Warnings[0].Error())
			})
		}
	})
}
