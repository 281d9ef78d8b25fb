package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// costlyCondition is the probe's: 124 deep comparisons of two attributes,
// which the sandbox accepts and whose worst case (about 10 million units)
// is over the per-flag budget.
var costlyCondition = strings.TrimSuffix(strings.Repeat("a != b || ", 124), " || ")

// A save that adds or changes a flag over the per-flag budget is refused
// with the flag's line and the figures, and writes nothing.
func TestSaveRefusesCostlyFlag(t *testing.T) {
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		_, _, err := st.ReplaceText(ctx, "ui.x default 0 off\n", nil, change("base", 0))
		require.NoError(t, err)
		text := "ui.cheap default 0 on\nui.x default 1 on\n    when " + costlyCondition + "\nui.x default 0 off\n"
		_, _, err = st.ReplaceText(ctx, text, nil, change("costly", 1))
		require.ErrorIs(t, err, sqlstore.ErrInvalid)
		require.ErrorIs(t, err, rules.ErrCost)
		var list rules.ErrorList
		require.True(t, errors.As(err, &list))
		require.Len(t, list, 1)
		assert.Equal(t, 2, list[0].Line)
		assert.Regexp(t, `^line 2: ui\.x costs up to [0-9]+ units, over the per-flag budget of 1000000 \(its costliest rule, line 2, costs [0-9]+\)$`, list[0].Error())
		rev, err := st.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1), rev, "nothing was saved")
	})
}

// A flag over the budget that a save does not touch (stored before the
// budget, or by hand) never makes the save fail: it is kept and listed as
// a warning. Changing it is refused.
func TestSaveWarnsUntouchedCostlyFlag(t *testing.T) {
	dsns := sqlstoretest.DSNs(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			_, _, err = st.ReplaceText(ctx, "f default 0 safe\n", nil, change("base", 0))
			require.NoError(t, err)

			raw := sqlstoretest.RawDB(t, dsn)
			_, err = raw.ExecContext(ctx, `INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES ($1, $2, $3, $4, $5)`,
				"ui.x", "default", 1, "on", costlyCondition)
			require.NoError(t, err)

			cfg, err := st.Load(ctx)
			require.NoError(t, err)
			text := rules.Format(cfg.Rules)
			e, _, err := st.ReplaceText(ctx, strings.Replace(text, "safe", "safer", 1), nil, change("unrelated", cfg.Revision))
			require.NoError(t, err, "a save that does not touch the costly flag succeeds")
			require.Len(t, e.Warnings, 1)

			assert.ErrorIs(t, e.Warnings[0], rules.ErrCost)
			assert.Contains(t, e.Warnings[0].Error(), "ui.x costs up to")
			assert.Contains(t, e.Warnings[0].Error(), "kept, since this change does not touch it")

			e, err = st.ReplaceRules(ctx, parse(t, strings.Replace(text, "safe", "safest", 1)), change("again", e.Revision))
			require.NoError(t, err)
			require.Len(t, e.Warnings, 1, "ReplaceRules warns alike")

			touched := strings.Replace(text, "\ton\n", "\tyes\n", 1)
			_, _, err = st.ReplaceText(ctx, touched, nil, change("touch it", e.Revision))
			require.ErrorIs(t, err, rules.ErrCost, "a save that changes it is refused")
			assert.Contains(t, err.Error(), fmt.Sprintf("over the per-flag budget of %d", rules.DefaultFlagBudget))

			// A revert is a write like any other: one that leaves the flag
			// as it is warns, one that brings it back is refused.
			kept := e
			e, _, err = st.ReplaceText(ctx, "f default 0 safe\n", nil, change("drop it", e.Revision))
			require.NoError(t, err)
			assert.Empty(t, e.Warnings)
			_, err = st.Revert(ctx, kept.ID, change("bring it back", e.Revision))
			require.ErrorIs(t, err, rules.ErrCost)
			assert.Contains(t, err.Error(), fmt.Sprintf("the rules recorded with change #%d: line 2: ui.x costs up to", kept.ID))
		})
	}
}
